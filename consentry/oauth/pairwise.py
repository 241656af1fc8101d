"""App-scoped person identifiers (OIDC pairwise subjects, OpenID Connect Core 8.1).

An app never sees a global person id. The id it sees is AES-128 of the block
(app id, person id) under a key derived per app from the operator's pairwise key: it looks
random, is stable for that app, means nothing to any other app (another app's key decrypts
it to a block whose app id does not match), and needs no table, so a 5,000-friend response
maps all ids with one cipher call.
"""

from __future__ import annotations

import base64
import binascii
import struct
import threading
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_BLOCK = struct.Struct(">QQ")


@lru_cache(maxsize=4096)
def _app_cipher(app_id: int, master: str) -> Cipher[modes.ECB]:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=16,
        salt=None,
        info=b"consentry-pairwise-v1:" + str(app_id).encode(),
    ).derive(bytes.fromhex(master))
    # ECB over single independent blocks is a keyed pseudorandom permutation: exactly the
    # property wanted here (no block ever repeats, since person ids are unique).
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305


def _blocks(high: int, ids: list[int]) -> bytes:
    """The 16-byte blocks (high, id) of every id, in order: _BLOCK.pack of each, in one
    struct call."""
    values = [high] * (2 * len(ids))
    values[1::2] = ids
    return struct.pack(f">{len(values)}Q", *values)


# Ids already made, per (app, operator key), for single ids and pages alike: a friends
# page names the same people on every call, and a dict lookup per id costs a tenth of
# the cipher call and its encoding. Bounded: past MEMO_MAX ids in all, the memo starts
# again empty.
MEMO_MAX = 65_536
_memo: dict[tuple[int, str], dict[int, str]] = {}
_memo_size = 0
# Request threads share the memo: its size and its growth change under this lock (lookups
# need none), so the bound holds and the count is the ids the memo holds.
_memo_lock = threading.Lock()


def app_scoped_ids(app_id: int, person_ids: Iterable[int]) -> list[str]:
    """The app-scoped ids of many people, in order: those made before from the memo, the
    others with one cipher call."""
    global _memo_size
    ids = list(person_ids)
    if not ids:
        return []
    master = settings.PAIRWISE_KEY
    known = _memo.get((app_id, master)) or {}
    got = list(map(known.get, ids))
    if None not in got:
        return got  # type: ignore[return-value]
    missing = [person for person, sid in zip(ids, got, strict=True) if sid is None]
    made = dict(zip(missing, cipher_ids(app_id, master, missing), strict=True))
    if len(made) <= MEMO_MAX:
        with _memo_lock:
            if _memo_size + len(made) > MEMO_MAX:
                _memo.clear()
                _memo_size = 0
            # The memo's dict now (another thread may have started it again since).
            known = _memo.setdefault((app_id, master), {})
            held = len(known)
            known.update(made)
            _memo_size += len(known) - held  # another thread may have made some too
    return [made[person] if sid is None else sid for person, sid in zip(ids, got, strict=True)]


def cipher_ids(app_id: int, master: str, ids: list[int]) -> list[str]:
    """The app-scoped ids of `ids` under the operator key `master`: one cipher call."""
    if not ids:
        return []
    plain = _blocks(app_id, ids)
    encrypted = _app_cipher(app_id, master).encryptor().update(plain)
    return _encode_blocks(encrypted)


def app_scoped_id(app_id: int, person_id: int) -> str:
    """One person's app-scoped id: UserInfo and `/v1/me` name the same few people again
    and again, so it is looked up in the same memo first."""
    known = _memo.get((app_id, settings.PAIRWISE_KEY))
    sid = None if known is None else known.get(person_id)
    return sid if sid is not None else app_scoped_ids(app_id, (person_id,))[0]


def person_id_for(app_id: int, scoped_id: str) -> int | None:
    """The person behind `scoped_id` for this app, or None for anything not issued to it."""
    raw = _decode(scoped_id)
    if raw is None:
        return None
    plain = _app_cipher(app_id, settings.PAIRWISE_KEY).decryptor().update(raw)
    got_app, person_id = _BLOCK.unpack(plain)
    return person_id if got_app == app_id else None


def _encode(block: bytes) -> str:
    return base64.b32encode(block).decode().rstrip("=").lower()


_B32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)
_FIVE_BITS = np.array([16, 8, 4, 2, 1], dtype=np.uint8)
_MANY = 8  # from this many ids, one numpy pass beats base64's Python loop per id


def _encode_blocks(blocks: bytes) -> list[str]:
    """_encode() of each 16-byte block, in order. A friends page names hundreds of
    people: base64.b32encode is a Python loop, so their bits are regrouped in one numpy
    pass (128 bits and 2 zero bits of padding = 26 base32 digits, as b32encode gives)."""
    n = len(blocks) // 16
    if n < _MANY:
        return [_encode(blocks[i : i + 16]) for i in range(0, len(blocks), 16)]
    bits = np.unpackbits(np.frombuffer(blocks, dtype=np.uint8).reshape(n, 16), axis=1)
    digits = np.concatenate([bits, np.zeros((n, 2), dtype=np.uint8)], axis=1).reshape(n, 26, 5)
    text = _B32[digits @ _FIVE_BITS].tobytes().decode("ascii")
    return [text[i : i + 26] for i in range(0, 26 * n, 26)]


def _decode(text: str) -> bytes | None:
    if len(text) != 26 or not text.isascii():
        return None
    try:
        raw = base64.b32decode(text.upper() + "======")
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 16 else None


# --- Installer-scoped ids (docs/rules.md rule 3: unlinkable friend-shared data) -------------------
# A friend who never used the app and reaches it only through their opt-in is named by an
# id scoped to (app, installer): AES under a key derived per (app, installer) of the block
# (INSTALLER_TAG | installer id, person id). Another installer's key decrypts it to a
# block whose first half does not match, so their token cannot use it (404), and the same
# friend has unrelated ids in different installers' friend lists. See graph/release.py.
_INSTALLER_TAG = 1 << 63


@lru_cache(maxsize=4096)
def _installer_cipher(app_id: int, installer_id: int, master: str) -> Cipher[modes.ECB]:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=16,
        salt=None,
        info=f"consentry-installer-scoped-v1:{app_id}:{installer_id}".encode(),
    ).derive(bytes.fromhex(master))
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305


def installer_scoped_ids(app_id: int, installer_id: int, person_ids: Iterable[int]) -> list[str]:
    """The (app, installer)-scoped ids of many people, in order, with one cipher call."""
    ids = list(person_ids)
    if not ids:
        return []
    tag = _INSTALLER_TAG | installer_id
    plain = _blocks(tag, ids)
    cipher = _installer_cipher(app_id, installer_id, settings.PAIRWISE_KEY)
    encrypted = cipher.encryptor().update(plain)
    return _encode_blocks(encrypted)


def person_id_for_installer(app_id: int, installer_id: int, scoped_id: str) -> int | None:
    """The person behind an (app, installer)-scoped id, or None for anything not issued
    to this app acting for this installer."""
    raw = _decode(scoped_id)
    if raw is None:
        return None
    cipher = _installer_cipher(app_id, installer_id, settings.PAIRWISE_KEY)
    tag, person_id = _BLOCK.unpack(cipher.decryptor().update(raw))
    return person_id if tag == _INSTALLER_TAG | installer_id else None


def person_ids_for(app_id: int, scoped_ids: Iterable[str]) -> list[int | None]:
    """person_id_for over many ids with one cipher call (canary checks of leaked files)."""
    raws = [_decode(text) for text in scoped_ids]
    blocks = b"".join(raw for raw in raws if raw is not None)
    plain = _app_cipher(app_id, settings.PAIRWISE_KEY).decryptor().update(blocks) if blocks else b""
    out: list[int | None] = []
    at = 0
    for raw in raws:
        if raw is None:
            out.append(None)
            continue
        got_app, person_id = _BLOCK.unpack(plain[at : at + 16])
        at += 16
        out.append(person_id if got_app == app_id else None)
    return out
