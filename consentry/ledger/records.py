"""The canonical byte encoding of a call record: pure functions, no database.

Packed subjects (the `CallRecord.subjects` blob), format version 1:
    n subject ids as unsigned 64-bit little-endian integers, strictly ascending,
    followed by the n field masks as unsigned 16-bit little-endian integers
    (bits as consentry.grants.permissions.RELEASE_BIT), in the same order.
  10 bytes per subject; 5,000 subjects are 50,000 bytes. Columnar so numpy unpacks it
  without a Python loop. Not compressed: zlib would shrink sorted ids, but it costs more
  CPU on the request path than the bytes it saves cost the database.

Leaf input (what the RFC 6962 leaf hash covers), big-endian as in RFC 6962's TLS
encoding:
    u8  format version (1)
    u64 leaf index
    u64 created_at, microseconds since the Unix epoch (UTC)
    u64 app id
    u64 acting person id
    u8  1 if a token id follows, else 0; then u64 token id when present
    u16 endpoint length, then the endpoint in UTF-8
    u32 subject count
    the packed subjects blob above
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from operator import lt

import numpy as np

from consentry.ledger.merkle import leaf_hash

FORMAT_VERSION = 1
MAX_MASK = 0xFFFF
MAX_SUBJECT_ID = 2**32 - 1  # the derived Roaring bitmaps (pyroaring.BitMap) are 32-bit
MAX_ENDPOINT_BYTES = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEAD = struct.Struct(">BQQQQ")
_ID_DTYPE = np.dtype("<u8")
_MASK_DTYPE = np.dtype("<u2")


@dataclass(frozen=True)
class Released:
    """Subjects and masks of one call, sorted by subject id, each subject once."""

    ids: np.ndarray  # uint64
    masks: np.ndarray  # uint16

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def pairs(self) -> tuple[tuple[int, int], ...]:
        return tuple(zip(self.ids.tolist(), self.masks.tolist(), strict=True))


def normalize(released: Sequence[tuple[int, int]]) -> Released:
    """Sort by subject id and OR together the masks of a subject named twice.

    Raises ValueError for an empty mask, a mask outside 16 bits or an id outside
    1..MAX_SUBJECT_ID: the ledger refuses to record what it cannot represent exactly.
    """
    if not released:
        return Released(np.empty(0, _ID_DTYPE), np.empty(0, _MASK_DTYPE))
    arr = np.asarray(released, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError("released must be a sequence of (subject id, mask) pairs")
    ids, masks = arr[:, 0], arr[:, 1]
    if (masks <= 0).any() or (masks > MAX_MASK).any():
        raise ValueError("every released mask must be non-zero and fit in 16 bits")
    if (ids <= 0).any() or (ids > MAX_SUBJECT_ID).any():
        raise ValueError(f"subject ids must be between 1 and {MAX_SUBJECT_ID}")
    order = np.argsort(ids, kind="stable")
    ids, masks = ids[order], masks[order]
    if ids.shape[0] > 1 and not (ids[1:] > ids[:-1]).all():
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ids = ids[starts]
        masks = np.bitwise_or.reduceat(masks, starts)
    return Released(ids.astype(_ID_DTYPE), masks.astype(_MASK_DTYPE))


_ONE = struct.Struct("<QH")
SMALL = 64  # up to this many pairs, pure Python beats numpy's per-call overhead


def _ascending(ids: Sequence[int], masks: Sequence[int]) -> bool:
    """Whether the ids are strictly ascending and every id and mask is in range (loops in
    C: map, min, max)."""
    return (
        ids[0] > 0
        and ids[-1] <= MAX_SUBJECT_ID
        and all(map(lt, ids, islice(ids, 1, None)))
        and min(masks) > 0
        and max(masks) <= MAX_MASK
    )


def _columns(released: Sequence[tuple[int, int]]) -> tuple[Sequence[int], Sequence[int]]:
    """The ids and the masks of (id, mask) pairs; ValueError for anything but pairs."""
    columns = tuple(zip(*released, strict=True))
    if len(columns) != 2:
        raise ValueError("released must be a sequence of (subject id, mask) pairs")
    return columns[0], columns[1]


def packed(released: Sequence[tuple[int, int]]) -> tuple[bytes, int]:
    """pack_subjects(normalize(released)) and its subject count, with the same checks.
    Pairs already in ascending id order (a friends page: the page is in friend id order)
    are packed as they are; a call's few other pairs (most calls: one) without numpy."""
    n = len(released)
    if n == 1:  # a read of one person (/v1/me)
        ((subject, mask),) = released
        if 0 < subject <= MAX_SUBJECT_ID and 0 < mask <= MAX_MASK:
            return _ONE.pack(subject, mask), 1
    elif n:
        ids, masks = _columns(released)
        if _ascending(ids, masks):
            return struct.pack(f"<{n}Q{n}H", *ids, *masks), n
    if n > SMALL:
        rel = normalize(released)
        return pack_subjects(rel), len(rel)
    merged: dict[int, int] = {}
    for subject, mask in released:
        if not 0 < mask <= MAX_MASK:
            raise ValueError("every released mask must be non-zero and fit in 16 bits")
        if not 0 < subject <= MAX_SUBJECT_ID:
            raise ValueError(f"subject ids must be between 1 and {MAX_SUBJECT_ID}")
        merged[subject] = merged.get(subject, 0) | mask
    ids = sorted(merged)
    n = len(ids)
    return struct.pack(f"<{n}Q{n}H", *ids, *(merged[i] for i in ids)), n


def pack_subjects(released: Released) -> bytes:
    return released.ids.astype(_ID_DTYPE).tobytes() + released.masks.astype(_MASK_DTYPE).tobytes()


def unpack_subjects(blob: bytes) -> Released:
    """Inverse of pack_subjects; raises ValueError when the blob is malformed."""
    blob = bytes(blob)
    n, rest = divmod(len(blob), 10)
    if rest:
        raise ValueError("packed subjects blob has a length that is not a multiple of 10")
    ids = np.frombuffer(blob, dtype=_ID_DTYPE, count=n)
    masks = np.frombuffer(blob, dtype=_MASK_DTYPE, count=n, offset=8 * n)
    return Released(ids, masks)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exactly (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def leaf_input(
    *,
    index: int,
    created_at: datetime,
    app_id: int,
    actor_id: int,
    token_id: int | None,
    endpoint: str,
    subject_count: int,
    subjects: bytes,
) -> bytes:
    """The canonical bytes of one call record (format in the module docstring)."""
    endpoint_bytes = endpoint.encode()
    if len(endpoint_bytes) > MAX_ENDPOINT_BYTES:
        raise ValueError(f"endpoint longer than {MAX_ENDPOINT_BYTES} bytes")
    parts = [
        _HEAD.pack(FORMAT_VERSION, index, micros(created_at), app_id, actor_id),
        b"\x00" if token_id is None else b"\x01" + struct.pack(">Q", token_id),
        struct.pack(">H", len(endpoint_bytes)),
        endpoint_bytes,
        struct.pack(">I", subject_count),
        bytes(subjects),
    ]
    return b"".join(parts)


def record_leaf_hash(
    *,
    index: int,
    created_at: datetime,
    app_id: int,
    actor_id: int,
    token_id: int | None,
    endpoint: str,
    subject_count: int,
    subjects: bytes,
) -> bytes:
    """RFC 6962 leaf hash of one call record."""
    return leaf_hash(
        leaf_input(
            index=index,
            created_at=created_at,
            app_id=app_id,
            actor_id=actor_id,
            token_id=token_id,
            endpoint=endpoint,
            subject_count=subject_count,
            subjects=subjects,
        )
    )
