"""The ledger's tree head as a C2SP checkpoint (c2sp.org/tlog-checkpoint), signed as a
C2SP signed note (c2sp.org/signed-note) with the ledger's Ed25519 key.

Note text (tlog-checkpoint "Note text"): the origin, the tree size in decimal, the
base64 root hash, each on its own line ending in a newline. Signed note (signed-note
"Format"): the text, one empty line, then one line per signature:
    U+2014 (em dash), space, key name, space, base64(4-byte key ID || Ed25519 signature)
The key name is the origin; the key ID is SHA-256(key name || 0x0A || 0x01 || 32-byte
public key)[:4] (signed-note "Ed25519 signatures"). Verifiers hold the *vkey*
`<name>+<hex key ID>+base64(0x01 || public key)` (vkey()).

The same Ed25519 key signs the RFC 6962 tree heads (signing.py). Their signed bytes
start with the byte 0x00, which a note may never contain, so one signature can never
pass for the other.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization

from consentry import config
from consentry.ledger import signing

ED25519_TYPE = b"\x01"


def origin() -> str:
    """CONSENTRY_LEDGER_ORIGIN, else the scheme-less URL prefix of the published log
    (c2sp.org/tlog-tiles "Parameters"): `<public host>/ledger`."""
    configured = config.env("LEDGER_ORIGIN").strip()
    if configured:
        return configured
    from django.conf import settings

    parts = urlsplit(settings.PUBLIC_URL)
    return f"{parts.netloc}{parts.path.rstrip('/')}/ledger"


def _public_bytes() -> bytes:
    return signing.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + public).digest()[:4]


def _vkey(name: str, public: bytes) -> str:
    encoded = base64.b64encode(ED25519_TYPE + public).decode()
    return f"{name}+{key_id(name, public).hex()}+{encoded}"


def vkey() -> str:
    """The verifier key of the ledger's current signing key (signed-note "Verifier keys")."""
    return _vkey(origin(), _public_bytes())


def retired_vkeys() -> list[str]:
    """Verifier keys of retired ledger keys: checkpoints they signed still verify."""
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    return [_vkey(origin(), key.public_bytes(*raw)) for key in signing.retired_public_keys()]


def checkpoint_text(tree_size: int, root_hash: bytes) -> str:
    return f"{origin()}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n"


def signed_checkpoint(tree_size: int, root_hash: bytes) -> str:
    """The checkpoint for (tree_size, root_hash) as a signed note. Ed25519 is
    deterministic, so the same tree head always gives the same note."""
    text = checkpoint_text(tree_size, root_hash)
    name, public = origin(), _public_bytes()
    signature = signing.signing_key().sign(text.encode())
    encoded = base64.b64encode(key_id(name, public) + signature).decode()
    return f"{text}\n\u2014 {name} {encoded}\n"
