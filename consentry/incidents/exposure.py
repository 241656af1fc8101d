"""What an app received about each person, exactly, from the disclosure ledger: for every
subject, every field the app ever got, when first and last, and through whom (the acting
person of the call: the subject themself, or the friend whose token it used).

The set of subjects is the ledger's blast radius (consentry.ledger.api.blast_radius);
this reads the app's call records themselves (indexed by app) to add the when and the
through whom. Column arithmetic with numpy: 100,000 people cost well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np

from consentry.grants.permissions import RELEASE_BIT, RELEASE_FIELDS
from consentry.ledger.models import CallRecord
from consentry.ledger.records import from_micros, micros, unpack_subjects

BIT_OF = {field: bit.bit_length() - 1 for field, bit in RELEASE_BIT.items()}


@dataclass(frozen=True)
class FieldExposure:
    field: str
    first_at: datetime
    last_at: datetime
    first_through: int  # acting person of the first call that released it
    last_through: int


@dataclass(frozen=True)
class Exposures:
    """Column form: `subjects` (sorted) and, per field, parallel arrays over the subjects
    that field reached (position in `subjects`, first/last time in µs, first/last actor)."""

    subjects: np.ndarray
    masks: np.ndarray  # union mask per subject, same order as `subjects`
    per_field: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    calls: int
    first_at: datetime | None
    last_at: datetime | None

    def __len__(self) -> int:
        return int(self.subjects.shape[0])

    def people_per_field(self) -> dict[str, int]:
        return {f: int(cols[0].shape[0]) for f, cols in self.per_field.items()}

    def for_slice(self, start: int, stop: int) -> list[tuple[int, list[FieldExposure]]]:
        """(subject id, exposures in RELEASE_FIELDS order) for subjects[start:stop]."""
        out: list[list[FieldExposure]] = [[] for _ in range(max(0, stop - start))]
        moment = lru_cache(maxsize=None)(from_micros)  # one time per ledger entry
        for field in RELEASE_FIELDS:
            cols = self.per_field.get(field)
            if cols is None:
                continue
            pos, first, last, first_by, last_by = cols
            lo, hi = np.searchsorted(pos, [start, stop])
            for p, f, la, fb, lb in zip(
                pos[lo:hi].tolist(),
                first[lo:hi].tolist(),
                last[lo:hi].tolist(),
                first_by[lo:hi].tolist(),
                last_by[lo:hi].tolist(),
                strict=True,
            ):
                out[p - start].append(FieldExposure(field, moment(f), moment(la), fb, lb))
        ids = self.subjects[start:stop].tolist()
        return list(zip(ids, out, strict=True))


def exposures_for_app(app_id: int, upto: int | None = None) -> Exposures:
    """Every subject the app received data about in ledger entries below `upto` (all
    when None), with per field the first and last time and acting person."""
    qs = CallRecord.objects.filter(app_id=app_id)
    if upto is not None:
        qs = qs.filter(index__lt=upto)
    id_parts, mask_parts, call_parts = [], [], []
    times, actors = [], []
    for n, (created_at, actor_id, blob) in enumerate(
        qs.order_by("index").values_list("created_at", "actor_id", "subjects").iterator(2000)
    ):
        times.append(micros(created_at))
        actors.append(actor_id)
        rel = unpack_subjects(bytes(blob))
        if len(rel):
            id_parts.append(rel.ids.astype(np.int64))
            mask_parts.append(rel.masks.astype(np.int64))
            call_parts.append(np.full(len(rel), n, dtype=np.int64))
    calls = len(times)
    if not id_parts:
        empty = np.zeros(0, dtype=np.int64)
        return Exposures(empty, empty, {}, calls, None, None)
    ids = np.concatenate(id_parts)
    masks = np.concatenate(mask_parts)
    call_no = np.concatenate(call_parts)  # ascending: records were read in ledger order
    time_of = np.asarray(times, dtype=np.int64)
    actor_of = np.asarray(actors, dtype=np.int64)
    subjects, inverse = np.unique(ids, return_inverse=True)
    union = np.zeros(subjects.shape[0], dtype=np.int64)
    np.bitwise_or.at(union, inverse, masks)
    per_field = {}
    for field in RELEASE_FIELDS:
        sel = (masks >> BIT_OF[field]) & 1 == 1
        if not sel.any():
            continue
        pos, calls_f = inverse[sel], call_no[sel]
        # First occurrence per subject (calls ascending); last from the reversed order.
        upos, first_i = np.unique(pos, return_index=True)
        _rpos, last_ri = np.unique(pos[::-1], return_index=True)
        last_i = pos.shape[0] - 1 - last_ri
        first_call, last_call = calls_f[first_i], calls_f[last_i]
        per_field[field] = (
            upos,
            time_of[first_call],
            time_of[last_call],
            actor_of[first_call],
            actor_of[last_call],
        )
    used = np.unique(call_no)
    return Exposures(
        subjects=subjects,
        masks=union,
        per_field=per_field,
        calls=calls,
        first_at=from_micros(int(time_of[used[0]])),
        last_at=from_micros(int(time_of[used[-1]])),
    )
