"""The checkpoint at /ledger/checkpoint verifies with an independent implementation of
C2SP signed-note (c2sp.org/signed-note) and tlog-checkpoint (c2sp.org/tlog-checkpoint),
written here from the two texts alone: nothing below imports consentry.ledger's note
code. The Ed25519 primitive comes from `cryptography`; the formats are ours to get right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import transaction
from django.test import Client

from consentry.grants.permissions import RELEASE_BIT
from consentry.ledger import api, signing

# --- The independent verifier ------------------------------------------------------------------


class NoteError(ValueError):
    pass


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: bytes
    public: Ed25519PublicKey


def parse_vkey(vkey: str) -> Verifier:
    """signed-note "Verifier keys": <name>+hex(key ID)+base64(type || public key)."""
    name, key_hex, material = vkey.split("+", 2)  # base64 may hold "+", a name may not
    raw = base64.b64decode(material, validate=True)
    if raw[:1] != b"\x01" or len(raw) != 33:
        raise NoteError("not an Ed25519 verifier key")
    key_id = bytes.fromhex(key_hex)
    if hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4] != key_id:
        raise NoteError("the key ID does not match the key")
    return Verifier(name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:]))


def open_note(note: str, verifier: Verifier) -> str:
    """signed-note "Format" and "Signatures": the verified text, or NoteError."""
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise NoteError("control character")
    if not note.endswith("\n"):
        raise NoteError("a note ends in a newline")
    split = note.rfind("\n\n")  # the text ends at the *last* empty line
    if split < 0:
        raise NoteError("no blank line before the signatures")
    text, signatures = note[: split + 1], note[split + 2 :]
    verified = False
    for line in signatures[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise NoteError("malformed signature line")
        name, _, encoded = line[2:].partition(" ")
        if not name or " " in encoded or "+" in name:
            raise NoteError("malformed signature line")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise NoteError("signature is not base64") from exc
        if len(blob) < 5:
            raise NoteError("signature too short")
        if name != verifier.name or blob[:4] != verifier.key_id:
            continue  # "Verifiers MUST ignore signatures from unknown keys"
        try:
            verifier.public.verify(blob[4:], text.encode())
        except InvalidSignature as exc:
            raise NoteError("a known key's signature does not verify") from exc
        verified = True
    if not verified:
        raise NoteError("no signature from a known key")
    return text


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def parse_checkpoint(text: str) -> Checkpoint:
    """tlog-checkpoint "Note text": origin, decimal size, base64 root, extension lines."""
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) < 4 or any(line == "" for line in lines[:-1]):
        raise NoteError("a checkpoint is at least three non-empty lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or (size != "0" and size.startswith("0")) or not size.isascii():
        raise NoteError("tree size is not a decimal without leading zeroes")
    digest = base64.b64decode(root, validate=True)
    if len(digest) != 32:
        raise NoteError("root hash is not SHA-256")
    return Checkpoint(origin, int(size), digest)


def verify_checkpoint(note: str, vkey: str, origin: str) -> Checkpoint:
    cp = parse_checkpoint(open_note(note, parse_vkey(vkey)))
    if cp.origin != origin:
        raise NoteError("checkpoint of another log")
    return cp


def rfc6962_root(leaf_hashes: list[bytes]) -> bytes:
    if not leaf_hashes:
        return hashlib.sha256(b"").digest()
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = 1
    while k * 2 < len(leaf_hashes):
        k *= 2
    left, right = rfc6962_root(leaf_hashes[:k]), rfc6962_root(leaf_hashes[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


# --- The verifier itself, on the spec's own example --------------------------------------------

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_the_independent_verifier_accepts_the_signed_note_spec_example() -> None:
    assert open_note(SPEC_NOTE, parse_vkey(SPEC_VKEY)) == "This is an example message.\n"
    with pytest.raises(NoteError):
        open_note(SPEC_NOTE.replace("example message", "example massage"), parse_vkey(SPEC_VKEY))


# --- Consentry's checkpoint ----------------------------------------------------------------------


def public_vkey(name: str) -> str:
    """The vkey an operator would hand out, built from the ledger's public key alone."""
    raw = signing.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4]
    material = base64.b64encode(b"\x01" + raw).decode()
    return f"{name}+{key_id.hex()}+{material}"


def expected_origin() -> str:
    return settings.PUBLIC_URL.split("://", 1)[1] + "/ledger"


def fill(n: int) -> None:
    with transaction.atomic():
        for i in range(n):
            api.record_disclosure(
                app_id=1, actor_id=5 + i, endpoint="/v1/me", released=[(5 + i, RELEASE_BIT["name"])]
            )


@pytest.mark.django_db
def test_published_checkpoint_verifies_and_commits_to_the_published_tiles(client: Client) -> None:
    fill(300)
    origin = expected_origin()
    vkey = public_vkey(origin)
    assert client.get("/ledger/vkey").content.decode() == vkey + "\n"
    response = client.get("/ledger/checkpoint")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    cp = verify_checkpoint(response.content.decode(), vkey, origin)
    assert cp.size == 300
    leaves = (
        client.get("/ledger/tile/0/000").content + client.get("/ledger/tile/0/001.p/44").content
    )
    assert rfc6962_root([leaves[i : i + 32] for i in range(0, len(leaves), 32)]) == cp.root


@pytest.mark.django_db
def test_a_tampered_checkpoint_fails(client: Client) -> None:
    fill(3)
    origin = expected_origin()
    vkey = public_vkey(origin)
    note = client.get("/ledger/checkpoint").content.decode()
    assert verify_checkpoint(note, vkey, origin).size == 3
    lines = note.split("\n")
    sig_line = lines[4]
    name, encoded = sig_line[2:].split(" ")
    blob = bytearray(base64.b64decode(encoded))
    blob[-1] ^= 1
    forged_sig = f"\u2014 {name} {base64.b64encode(bytes(blob)).decode()}"
    other_root = base64.b64encode(bytes(32)).decode()
    tampered = [
        note.replace("\n3\n", "\n4\n", 1),
        "\n".join([lines[0], lines[1], other_root, *lines[3:]]),
        "\n".join([*lines[:4], forged_sig, *lines[5:]]),
        note.replace(lines[0], "evil.example/ledger", 1),
        note.replace("\n\n", "\n", 1),
    ]
    for bad in tampered:
        with pytest.raises(NoteError):
            verify_checkpoint(bad, vkey, origin)
    with pytest.raises(NoteError):  # signed by the ledger, but under another key name
        verify_checkpoint(note, public_vkey("someone.else/log"), origin)


@pytest.mark.django_db
def test_after_a_key_rotation_old_checkpoints_and_tree_heads_still_verify(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(3)
    origin = expected_origin()
    old_vkey = public_vkey(origin)
    old_note = client.get("/ledger/checkpoint").content.decode()
    retired = tmp_path / "retired.pem"
    retired.write_bytes(signing.public_key_pem())
    monkeypatch.setenv("CONSENTRY_LEDGER_KEY_PATH", str(tmp_path / "new_key.pem"))
    fill(2)
    new_vkey = public_vkey(origin)
    assert new_vkey != old_vkey
    new_note = client.get("/ledger/checkpoint").content.decode()
    assert verify_checkpoint(new_note, new_vkey, origin).size == 5
    with pytest.raises(NoteError):
        verify_checkpoint(new_note, old_vkey, origin)
    assert verify_checkpoint(old_note, old_vkey, origin).size == 3
    # Tree heads signed with the old key fail verify until the old key is named retired.
    assert not api.verify_ledger().ok
    monkeypatch.setenv("CONSENTRY_LEDGER_RETIRED_KEYS", str(retired))
    assert api.verify_ledger().ok
    assert client.get("/ledger/vkey").content.decode() == f"{new_vkey}\n{old_vkey}\n"
