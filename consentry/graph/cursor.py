"""Opaque pagination cursors.

A cursor must not be a handle on a person: the position after a *withheld* friend, if
it were that friend's id (global or app-scoped), would tell the app that a given
non-consenting person is a friend of several of its users. So a cursor is the position
encrypted with AES-GCM under a key derived from the secret key, with a random nonce (no
two cursors look alike) and the endpoint, app and acting person as associated data (a
cursor is useless on another endpoint, to another app or for another person).
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_NONCE = 12
MAX_CURSOR_LENGTH = 200


@lru_cache(maxsize=4)
def _aead(secret: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=16, salt=None, info=b"consentry-graph-cursor-v1"
    ).derive(secret.encode())
    return AESGCM(key)


def _context(kind: str, app_id: int, person_id: int) -> bytes:
    return f"{kind}:{app_id}:{person_id}".encode()


def encode_cursor(kind: str, app_id: int, person_id: int, position: tuple[int, ...]) -> str:
    nonce = os.urandom(_NONCE)
    plain = struct.pack(f">{len(position)}q", *position)
    sealed = _aead(settings.SECRET_KEY).encrypt(nonce, plain, _context(kind, app_id, person_id))
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def decode_cursor(
    text: str, kind: str, app_id: int, person_id: int, length: int
) -> tuple[int, ...] | None:
    """The position in a cursor issued for this endpoint, app and person, else None."""
    if not text or len(text) > MAX_CURSOR_LENGTH or not text.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    try:
        plain = _aead(settings.SECRET_KEY).decrypt(
            raw[:_NONCE], raw[_NONCE:], _context(kind, app_id, person_id)
        )
    except (InvalidTag, ValueError):
        return None
    if len(plain) != 8 * length:
        return None
    return struct.unpack(f">{length}q", plain)
