"""Signed tree heads: Ed25519 over RFC 6962 section 3.5's TreeHeadSignature.

Signed bytes (50 bytes, big-endian):
    u8  version            0 (v1)
    u8  signature_type     1 (tree_hash)
    u64 timestamp          milliseconds since the Unix epoch
    u64 tree_size
    32  sha256_root_hash

The key is an Ed25519 private key in PKCS#8 PEM, generated on first use at
settings.VAR_DIR / "ledger_ed25519.pem" (mode 0600) or at CONSENTRY_LEDGER_KEY_PATH.
Anyone holding the public key (public_key_pem()) can check a tree head with
verify_tree_head(); nothing else is needed.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from consentry import config

_TREE_HEAD = struct.Struct(">BBQQ32s")
VERSION_V1 = 0
SIGNATURE_TYPE_TREE_HASH = 1


@dataclass(frozen=True)
class SignedTreeHead:
    tree_size: int
    timestamp_ms: int
    root_hash: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        return tree_head_bytes(self.tree_size, self.timestamp_ms, self.root_hash)


def tree_head_bytes(tree_size: int, timestamp_ms: int, root_hash: bytes) -> bytes:
    """The canonical encoding that is signed (module docstring)."""
    if len(root_hash) != 32:
        raise ValueError("a root hash is 32 bytes")
    return _TREE_HEAD.pack(
        VERSION_V1, SIGNATURE_TYPE_TREE_HASH, timestamp_ms, tree_size, bytes(root_hash)
    )


def verify_tree_head(sth: SignedTreeHead, public_key: Ed25519PublicKey | bytes) -> bool:
    """True when `sth.signature` is a valid Ed25519 signature by `public_key` (an object,
    or its PEM bytes) over the tree head's canonical encoding."""
    key = (
        public_key
        if isinstance(public_key, Ed25519PublicKey)
        else serialization.load_pem_public_key(public_key)
    )
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError("not an Ed25519 public key")
    try:
        key.verify(bytes(sth.signature), sth.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


def key_path() -> Path:
    configured = config.env("LEDGER_KEY_PATH")
    if configured:
        return Path(configured)
    from django.conf import settings

    return Path(settings.VAR_DIR) / "ledger_ed25519.pem"


@lru_cache(maxsize=4)
def _load_or_create(path: Path) -> Ed25519PrivateKey:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pem = path.read_bytes()
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"{path} does not hold an Ed25519 private key")
    return key


def signing_key() -> Ed25519PrivateKey:
    """The ledger's private key, created on first use (module docstring)."""
    return _load_or_create(key_path())


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


def retired_public_keys() -> list[Ed25519PublicKey]:
    """Public keys of earlier ledger keys (CONSENTRY_LEDGER_RETIRED_KEYS: comma-separated
    paths of PEM public keys), kept after a key rotation so that tree heads signed
    before it still verify (docs/deploy.md, "Key rotation")."""
    keys = []
    for raw in config.env("LEDGER_RETIRED_KEYS").split(","):
        if raw.strip():
            key = serialization.load_pem_public_key(Path(raw.strip()).read_bytes())
            if not isinstance(key, Ed25519PublicKey):
                raise TypeError(f"{raw.strip()} is not an Ed25519 public key")
            keys.append(key)
    return keys


def public_key_pem() -> bytes:
    return public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign_tree_head(tree_size: int, timestamp_ms: int, root_hash: bytes) -> SignedTreeHead:
    signature = signing_key().sign(tree_head_bytes(tree_size, timestamp_ms, root_hash))
    return SignedTreeHead(tree_size, timestamp_ms, bytes(root_hash), signature)
