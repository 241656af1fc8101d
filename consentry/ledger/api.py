"""The disclosure ledger's Python API (docs/ledger.md).

Append path (the Graph API calls it while it builds a response):
    record_disclosure(...) -> leaf index
        one INSERT of a CallRecord + one UPDATE of the LedgerHead state row (plus, every
        LEDGER_STH_INTERVAL entries, one signed tree head), inside the caller's
        transaction: if it raises, the caller's transaction fails and no data leaves.

Read path:
    read_entry, history_for_person, blast_radius, subjects_reached,
    inclusion_proof, consistency_proof, latest_signed_tree_head.
    The per-subject and per-app structures are derived from the call records lazily:
    every query first runs catch_up_index(), which indexes what was appended since.

Audit:
    verify_ledger() -> VerifyReport (the `consentry ledger verify` command).

The pure parts live beside this file: merkle.py (RFC 6962 hashing and proofs),
records.py (canonical bytes), signing.py (Ed25519 tree heads).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone
from pyroaring import BitMap

from consentry import config
from consentry.db.prepared import prepared_cursor
from consentry.grants.permissions import mask_to_fields
from consentry.ledger import merkle, partitions, records, signing, tilestore
from consentry.ledger.models import (
    AppReach,
    CallRecord,
    IndexWatermark,
    LedgerHead,
    SubjectDisclosure,
)
from consentry.ledger.models import SignedTreeHead as SignedTreeHeadRow
from consentry.ledger.signing import SignedTreeHead
from consentry.ops import metrics

__all__ = [
    "Disclosure",
    "InclusionProof",
    "LedgerEntry",
    "SignedTreeHead",
    "VerifyReport",
    "blast_radius",
    "catch_up_index",
    "consistency_proof",
    "history_for_person",
    "inclusion_proof",
    "indexed_upto",
    "latest_signed_tree_head",
    "ledger_size",
    "read_entry",
    "rebuild_index",
    "record_disclosure",
    "subjects_reached",
    "verify_inclusion",
    "verify_ledger",
]

verify_inclusion = merkle.verify_inclusion


def sth_interval() -> int:
    """Sign a tree head on append every this many entries (CONSENTRY_LEDGER_STH_INTERVAL,
    default 1000); latest_signed_tree_head() signs on demand in between."""
    return max(1, int(config.env("LEDGER_STH_INTERVAL", "1000")))


# --- Value types -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    index: int
    app_id: int
    actor_id: int
    endpoint: str
    created_at: datetime
    released: tuple[tuple[int, int], ...]
    leaf_hash: bytes
    token_id: int | None = None

    def recomputed_leaf_hash(self) -> bytes:
        """The RFC 6962 leaf hash of this entry's contents (compare with leaf_hash)."""
        packed = records.pack_subjects(records.normalize(self.released))
        return records.record_leaf_hash(
            index=self.index,
            created_at=self.created_at,
            app_id=self.app_id,
            actor_id=self.actor_id,
            token_id=self.token_id,
            endpoint=self.endpoint,
            subject_count=len(self.released),
            subjects=packed,
        )


@dataclass(frozen=True)
class Disclosure:
    """What one call released about one person."""

    index: int
    created_at: datetime
    app_id: int
    actor_id: int
    fields: list[str]
    endpoint: str


@dataclass(frozen=True)
class InclusionProof:
    """RFC 6962 section 2.1.1 audit path of leaf `index` in the tree of `tree_size`
    leaves, with the signed tree head whose root it leads to. Check it with
    verify_inclusion(leaf_hash, index, tree_size, audit_path, sth.root_hash) and
    signing.verify_tree_head(sth, public key)."""

    leaf_hash: bytes
    index: int
    tree_size: int
    audit_path: tuple[bytes, ...]
    sth: SignedTreeHead

    def verify(self) -> bool:
        return self.sth.tree_size == self.tree_size and merkle.verify_inclusion(
            self.leaf_hash, self.index, self.tree_size, self.audit_path, self.sth.root_hash
        )


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int
    subject_records: int
    signed_tree_heads: int
    indexed_upto: int
    root_hash: bytes
    bad_index: int | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.ok:
            return (
                f"OK: {self.entries} entries, {self.subject_records} subject records, "
                f"root {self.root_hash.hex()}, {self.signed_tree_heads} signed tree heads "
                f"valid, derived index matches up to entry {self.indexed_upto}"
            )
        where = "" if self.bad_index is None else f"entry {self.bad_index}: "
        return f"FAILED: {where}{self.problem}"


# --- Append ------------------------------------------------------------------------------------


# SQLite: the (size, frontier) this process last wrote to the head row. Only a hint: the
# append UPDATE is guarded by `WHERE size = ... AND frontier = ...`, so a stale hint (our
# transaction rolled back, or another process appended) matches no row and we fall back to
# reading the head. With a fresh hint an append is one UPDATE of the head row and one
# INSERT of the call record. PostgreSQL appends in the server instead (`_append_postgresql`).
_head_hint: dict[str, tuple[int, bytes]] = {}


def _sql() -> dict[str, str]:
    q = connection.ops.quote_name
    head, calls = q(LedgerHead._meta.db_table), q(CallRecord._meta.db_table)
    return {
        "advance": f"UPDATE {head} SET size = %s, frontier = %s "  # noqa: S608
        "WHERE id = 1 AND size = %s AND frontier = %s",
        "read": f"SELECT size, frontier FROM {head} WHERE id = 1",  # noqa: S608
        "create": f"INSERT INTO {head} (id, size, frontier) VALUES (1, 0, %s)",  # noqa: S608
        "insert": f"INSERT INTO {calls} ({q('index')}, created_at, app_id, actor_id, "  # noqa: S608
        "token_id, endpoint, subject_count, subjects, leaf_hash) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        # PostgreSQL: lock the head, hash the leaf, move the frontier, insert the record, all
        # in the server (migration ledger 0005): one round trip, and the head's lock lasts
        # only the statement when it runs outside a transaction.
        "append": "SELECT leaf_index, new_frontier, created_at FROM consentry_ledger_append("
        "%s::bigint, %s::bigint, %s::bigint, %s::varchar, %s::integer, %s::bytea, %s::bytea)",
    }


_SQL: dict[str, dict[str, str]] = {}


def _statements(vendor: str | None = None) -> dict[str, str]:
    vendor = vendor or connection.vendor
    if vendor not in _SQL:
        _SQL[vendor] = _sql()
    return _SQL[vendor]


def _read_head(cursor: Any, sql: dict[str, str]) -> tuple[int, bytes]:
    """SQLite: the head row's (size, frontier), created when missing. The caller's
    transaction (BEGIN IMMEDIATE) already holds the database's one write lock."""
    cursor.execute(sql["read"])
    row = cursor.fetchone()
    if row is None:
        cursor.execute(sql["create"], [b""])
        cursor.execute(sql["read"])
        row = cursor.fetchone()
    return int(row[0]), bytes(row[1])


def record_disclosure(
    *,
    app_id: int,
    actor_id: int,
    endpoint: str,
    released: Sequence[tuple[int, int]],
    token_id: int | None = None,
) -> int:
    """Append one call record and return its leaf index.

    `released` holds (subject person id, field mask) pairs, mask != 0 (bits as
    consentry.grants.permissions.RELEASE_BIT); a subject named twice has its masks
    OR-ed; an empty `released` records a call that released nothing. Inside the
    caller's transaction.atomic() block it extends that transaction with a row lock on
    the ledger head until commit (the head row's lock on PostgreSQL, SQLite's single
    writer): leaf indexes are therefore dense and in commit order. Call it last in the
    transaction to keep that lock short. If it raises, the caller's transaction must
    fail: no data leaves that the ledger did not record. On PostgreSQL it may also run
    outside any transaction: the append is then one statement that commits alone; on
    SQLite that is refused.
    """
    conn = connections[DEFAULT_DB_ALIAS]  # one lookup: each `connection.x` is another
    alone = not conn.in_atomic_block
    if conn.vendor == "postgresql":
        return _append_postgresql(alone, app_id, actor_id, endpoint, released, token_id)
    if alone:
        raise transaction.TransactionManagementError(
            "record_disclosure must run inside the transaction that builds the response"
        )
    subjects, count = records.packed(released)
    sql = _statements(conn.vendor)
    alias = conn.settings_dict["NAME"]
    adapt = conn.ops.adapt_datetimefield_value
    with prepared_cursor() as cursor:

        def append(index: int, old_blob: bytes, created_at: datetime) -> tuple[bool, Any, bytes]:
            """Hash the record as leaf `index`, move the head from `old_blob` past it and
            insert the record; False (nothing written) when the head is not at `old_blob`."""
            leaf = records.record_leaf_hash(
                index=index,
                created_at=created_at,
                app_id=app_id,
                actor_id=actor_id,
                token_id=token_id,
                endpoint=endpoint,
                subject_count=count,
                subjects=subjects,
            )
            frontier = merkle.frontier_append(merkle.unpack_frontier(old_blob), index, leaf)
            new_blob = merkle.pack_frontier(frontier)
            cursor.execute(sql["advance"], [index + 1, new_blob, index, old_blob])
            if cursor.rowcount != 1:
                return False, frontier, new_blob
            created = adapt(created_at)
            row = [index, created, app_id, actor_id, token_id, endpoint, count, subjects, leaf]
            cursor.execute(sql["insert"], row)
            return True, frontier, new_blob

        created_at = timezone.now()
        hint = _head_hint.get(alias)
        appended = False
        if hint is not None:
            # Optimistic: the head as this process last left it (one guarded UPDATE).
            index, old_blob = hint
            appended, frontier, new_blob = append(index, old_blob, created_at)
        if not appended:
            index, old_blob = _read_head(cursor, sql)
            appended, frontier, new_blob = append(index, old_blob, created_at)
            if not appended:
                raise RuntimeError("the ledger head changed while it was locked")
    _head_hint[alias] = (index + 1, new_blob)
    transaction.on_commit(metrics.ledger_appended)
    _maybe_sign(index, created_at, frontier)
    return index


def _append_postgresql(
    alone: bool,
    app_id: int,
    actor_id: int,
    endpoint: str,
    released: Sequence[tuple[int, int]],
    token_id: int | None,
) -> int:
    """record_disclosure on PostgreSQL: one call of `consentry_ledger_append`, which takes
    the head row's lock (until the statement commits when `alone`, else until the caller's
    transaction ends) and finds the leaf's index under it: appenders from every process
    queue on that lock, with nothing to retry."""
    subjects, count = records.packed(released)
    # The canonical bytes with index 0 and time 0: the function writes in the index it
    # finds and the time it took the lock.
    leaf_input = records.leaf_input(
        index=0,
        created_at=records.from_micros(0),
        app_id=app_id,
        actor_id=actor_id,
        token_id=token_id,
        endpoint=endpoint,
        subject_count=count,
        subjects=subjects,
    )
    args = [app_id, actor_id, token_id, endpoint, count, subjects, leaf_input]
    with prepared_cursor() as cursor:
        cursor.execute(_statements()["append"], args)
        index, blob, created_at = cursor.fetchone()
    if alone:
        metrics.ledger_appended()
    else:
        transaction.on_commit(metrics.ledger_appended)
    _maybe_sign(index, created_at, merkle.unpack_frontier(bytes(blob)))
    return int(index)


def _maybe_sign(index: int, created_at: datetime, frontier: Sequence[bytes]) -> None:
    """Every sth_interval() entries, the signed tree head of the tree that entry `index`
    completes."""
    if (index + 1) % sth_interval() == 0:
        _store_sth(
            signing.sign_tree_head(
                index + 1, created_at_ms(created_at), merkle.frontier_root(frontier)
            )
        )


def created_at_ms(moment: datetime) -> int:
    return records.micros(moment) // 1000


# --- Reading entries ---------------------------------------------------------------------------


def _entry(row: CallRecord) -> LedgerEntry:
    return LedgerEntry(
        index=row.index,
        app_id=row.app_id,
        actor_id=row.actor_id,
        endpoint=row.endpoint,
        created_at=row.created_at,
        released=records.unpack_subjects(bytes(row.subjects)).pairs(),
        leaf_hash=bytes(row.leaf_hash),
        token_id=row.token_id,
    )


def read_entry(index: int) -> LedgerEntry:
    """The call record at leaf `index`; raises CallRecord.DoesNotExist if there is none."""
    return _entry(CallRecord.objects.get(index=index))


def ledger_size() -> int:
    head = LedgerHead.objects.filter(pk=1).first()
    return head.size if head else 0


# --- Derived index -----------------------------------------------------------------------------

_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_COPY_TRAILER = b"\xff\xff"
_PG_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("l1", ">i4"),
        ("subject_id", ">i8"),
        ("l2", ">i4"),
        ("entry_index", ">i8"),
        ("l3", ">i4"),
        ("app_id", ">i8"),
        ("l4", ">i4"),
        ("mask", ">i4"),
    ]
)


def _insert_disclosures(
    subject_ids: np.ndarray, entries: np.ndarray, apps: np.ndarray, masks: np.ndarray
) -> None:
    """Bulk-insert SubjectDisclosure rows: binary COPY on PostgreSQL, executemany on SQLite.

    The ORM's bulk_create would build one model object per row, which at millions of
    rows costs more than the database work itself."""
    table = SubjectDisclosure._meta.db_table
    columns = "subject_id, entry_index, app_id, mask"
    if connection.vendor == "postgresql":
        rows = np.empty(subject_ids.shape[0], dtype=_PG_ROW)
        rows["n"] = 4
        rows["l1"] = rows["l2"] = rows["l3"] = 8
        rows["l4"] = 4
        rows["subject_id"] = subject_ids
        rows["entry_index"] = entries
        rows["app_id"] = apps
        rows["mask"] = masks
        with connection.cursor() as cursor:
            pg_cursor = cursor.cursor
            with pg_cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT BINARY)") as cp:
                cp.write(_PG_COPY_HEADER)
                cp.write(rows.tobytes())
                cp.write(_PG_COPY_TRAILER)
    else:
        connection.ensure_connection()
        raw = connection.connection
        assert raw is not None
        raw.executemany(
            f"INSERT INTO {table} ({columns}) VALUES (?, ?, ?, ?)",  # noqa: S608
            zip(
                subject_ids.tolist(),
                entries.tolist(),
                apps.tolist(),
                masks.tolist(),
                strict=True,
            ),
        )


def _u32(ids: np.ndarray) -> array:
    out = array("I")
    out.frombytes(ids.astype(np.uint32).tobytes())
    return out


def _bitmap_of(ids: np.ndarray) -> BitMap:
    return BitMap(_u32(ids))


def _locked_watermark() -> IndexWatermark:
    try:
        return IndexWatermark.objects.select_for_update().get(pk=1)
    except IndexWatermark.DoesNotExist:
        IndexWatermark.objects.bulk_create([IndexWatermark(pk=1)], ignore_conflicts=True)
        return IndexWatermark.objects.select_for_update().get(pk=1)


def _merge_reach(by_app: dict[int, dict[int, BitMap]]) -> None:
    for app_id, bits in by_app.items():
        existing = {r.bit: r for r in AppReach.objects.filter(app_id=app_id, bit__in=list(bits))}
        new_rows = []
        for bit, bm in bits.items():
            row = existing.get(bit)
            if row is None:
                new_rows.append(AppReach(app_id=app_id, bit=bit, bitmap=bm.serialize()))
            else:
                merged = BitMap.deserialize(bytes(row.bitmap)) | bm
                AppReach.objects.filter(app_id=app_id, bit=bit).update(bitmap=merged.serialize())
        AppReach.objects.bulk_create(new_rows)


def _index_batch(max_subjects: int, max_entries: int) -> int:
    """Index one batch of entries above the watermark; returns how many it indexed."""
    with transaction.atomic():
        mark = _locked_watermark()
        start = mark.upto
        meta = list(
            CallRecord.objects.filter(index__gte=start)
            .order_by("index")
            .values_list("index", "subject_count")[:max_entries]
        )
        take: list[int] = []
        volume = 0
        for expected, (index, count) in enumerate(meta, start):
            # Only a dense run: a gap is a missing entry, which verify reports.
            if index != expected or (take and volume + count > max_subjects):
                break
            take.append(index)
            volume += count
        if not take:
            return 0
        rows = CallRecord.objects.filter(index__gte=take[0], index__lte=take[-1]).values_list(
            "index", "app_id", "subjects"
        )
        id_parts, entry_parts, app_parts, mask_parts = [], [], [], []
        by_app: dict[int, dict[int, list[np.ndarray]]] = {}
        for index, app_id, blob in rows:
            rel = records.unpack_subjects(bytes(blob))
            n = len(rel)
            if not n:
                continue
            id_parts.append(rel.ids)
            mask_parts.append(rel.masks)
            entry_parts.append(np.full(n, index, dtype=np.int64))
            app_parts.append(np.full(n, app_id, dtype=np.int64))
            per_bit = by_app.setdefault(app_id, {})
            combined = np.bitwise_or.reduce(rel.masks)
            for bit in range(16):
                if combined >> bit & 1:
                    per_bit.setdefault(bit, []).append(rel.ids[(rel.masks >> bit) & 1 == 1])
        if id_parts:
            ids = np.concatenate(id_parts).astype(np.int64)
            entries = np.concatenate(entry_parts)
            apps = np.concatenate(app_parts)
            masks = np.concatenate(mask_parts).astype(np.int32)
            order = np.lexsort((entries, ids))  # index order: sequential B-tree inserts
            _insert_disclosures(ids[order], entries[order], apps[order], masks[order])
            _merge_reach(
                {
                    app: {bit: _bitmap_of(np.concatenate(parts)) for bit, parts in bits.items()}
                    for app, bits in by_app.items()
                }
            )
        mark.upto = take[-1] + 1
        mark.save(update_fields=["upto"])
        return len(take)


def catch_up_index(*, max_subjects: int = 1_000_000, max_entries: int = 10_000) -> int:
    """Derive SubjectDisclosure rows and AppReach bitmaps for every call record above the
    watermark, in batches of at most `max_subjects` subject records (one transaction
    each, under a lock on the watermark row so two processes never derive the same
    range). Idempotent; returns the number of entries indexed."""
    total = 0
    while True:
        done = _index_batch(max_subjects, max_entries)
        if not done:
            return total
        total += done


def rebuild_index() -> int:
    """Throw the derived index away and derive it again from the call records."""
    with transaction.atomic():
        mark = _locked_watermark()
        SubjectDisclosure.objects.all().delete()
        AppReach.objects.all().delete()
        mark.upto = 0
        mark.save(update_fields=["upto"])
    return catch_up_index()


def indexed_upto() -> int:
    mark = IndexWatermark.objects.filter(pk=1).first()
    return mark.upto if mark else 0


# --- Queries -------------------------------------------------------------------------------------


def history_for_person(
    person_id: int, *, limit: int = 50, before: int | None = None
) -> list[Disclosure]:
    """Every release of this person's data, newest first: which app read which fields,
    when, through which acting person and endpoint. Pass the last returned `index` as
    `before` to get the next page."""
    catch_up_index()
    qs = SubjectDisclosure.objects.filter(subject_id=person_id)
    if before is not None:
        qs = qs.filter(entry_index__lt=before)
    hits = list(qs.order_by("-entry_index").values_list("entry_index", "app_id", "mask")[:limit])
    if not hits:
        return []
    calls = {
        index: (created_at, actor_id, endpoint)
        for index, created_at, actor_id, endpoint in CallRecord.objects.filter(
            index__in=[h[0] for h in hits]
        ).values_list("index", "created_at", "actor_id", "endpoint")
    }
    out = []
    for index, app_id, mask in hits:
        created_at, actor_id, endpoint = calls[index]
        out.append(
            Disclosure(
                index=index,
                created_at=created_at,
                app_id=app_id,
                actor_id=actor_id,
                fields=mask_to_fields(mask),
                endpoint=endpoint,
            )
        )
    return out


def _reach_bitmaps(app_id: int) -> dict[int, BitMap]:
    catch_up_index()
    return {
        bit: BitMap.deserialize(bytes(blob))
        for bit, blob in AppReach.objects.filter(app_id=app_id).values_list("bit", "bitmap")
    }


def subjects_reached(app_id: int) -> BitMap:
    """Every person the app ever received any field of (exact)."""
    return BitMap.union(BitMap(), *_reach_bitmaps(app_id).values())


def blast_radius(app_id: int) -> dict[int, int]:
    """Every person the app ever received data about -> the union mask of the fields it
    received about them (RELEASE_BIT), exact: derived from every ledger entry."""
    bitmaps = _reach_bitmaps(app_id)
    if not bitmaps:
        return {}
    union = BitMap.union(BitMap(), *bitmaps.values())
    ids = np.frombuffer(union.to_array(), dtype=np.uint32)
    masks = np.zeros(ids.shape[0], dtype=np.int64)
    for bit, bm in bitmaps.items():
        positions = np.searchsorted(ids, np.frombuffer(bm.to_array(), dtype=np.uint32))
        masks[positions] |= 1 << bit
    return dict(zip(ids.tolist(), masks.tolist(), strict=True))


# --- Tree heads and proofs ---------------------------------------------------------------------


def _store_sth(sth: SignedTreeHead) -> None:
    SignedTreeHeadRow.objects.bulk_create(
        [
            SignedTreeHeadRow(
                tree_size=sth.tree_size,
                timestamp_ms=sth.timestamp_ms,
                root_hash=sth.root_hash,
                signature=sth.signature,
            )
        ],
        ignore_conflicts=True,
    )


def _stored_sth(tree_size: int) -> SignedTreeHead | None:
    row = SignedTreeHeadRow.objects.filter(tree_size=tree_size).first()
    if row is None:
        return None
    return SignedTreeHead(
        row.tree_size, row.timestamp_ms, bytes(row.root_hash), bytes(row.signature)
    )


def _sth_for(tree_size: int, root: bytes) -> SignedTreeHead:
    stored = _stored_sth(tree_size)
    if stored is not None:
        return stored
    _store_sth(signing.sign_tree_head(tree_size, created_at_ms(timezone.now()), root))
    stored = _stored_sth(tree_size)
    assert stored is not None
    return stored


def latest_signed_tree_head() -> SignedTreeHead:
    """A signed tree head for the ledger's current size, signing one if the tree grew
    since the last. One query when it did not (the head joined with its tree head)."""
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT h.size, h.frontier, s.timestamp_ms, s.root_hash, s.signature "  # noqa: S608
            f"FROM {q(LedgerHead._meta.db_table)} h LEFT JOIN "
            f"{q(SignedTreeHeadRow._meta.db_table)} s ON s.tree_size = h.size WHERE h.id = 1"
        )
        row = cursor.fetchone()
    if row is not None and row[2] is not None:
        return SignedTreeHead(int(row[0]), int(row[2]), bytes(row[3]), bytes(row[4]))
    size = int(row[0]) if row else 0
    frontier = merkle.unpack_frontier(bytes(row[1])) if row else []
    return _sth_for(size, merkle.frontier_root(frontier))


def _range_hasher(
    tree_size: int, plan: Callable[[merkle.RangeHash], object] | None = None
) -> merkle.RangeHash:
    """Subtree hashes of the tree of `tree_size` entries from the C2SP tiles
    (consentry/ledger/tilestore.py): a proof costs O(log n) reads at any size, fetched
    in two queries when `plan` says which proof will be computed. A size beyond the
    ledger raises ValueError when its leaves are found missing."""
    return tilestore.range_hasher(tree_size, plan)


def inclusion_proof(index: int, tree_size: int | None = None) -> InclusionProof:
    """RFC 6962 section 2.1.1 audit path for entry `index` in the tree of `tree_size`
    entries (default: the latest signed tree head), with that size's signed tree head."""
    sth = latest_signed_tree_head() if tree_size is None else _stored_sth(tree_size)
    size = sth.tree_size if tree_size is None and sth is not None else tree_size
    assert size is not None
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")

    def plan(mth: merkle.RangeHash) -> list[bytes]:
        return [mth(index, index + 1), *merkle.inclusion_path(index, size, mth)]

    leaf, *path = plan(_range_hasher(size, plan))
    if sth is None:
        sth = _sth_for(size, _range_hasher(size)(0, size))
    return InclusionProof(leaf, index, size, tuple(path), sth)


def consistency_proof(old_size: int, new_size: int) -> list[bytes]:
    """RFC 6962 section 2.1.2 proof that the tree of `old_size` entries is a prefix of
    the tree of `new_size` entries (check with merkle.verify_consistency)."""

    def plan(mth: merkle.RangeHash) -> list[bytes]:
        return merkle.consistency_path(old_size, new_size, mth)

    return plan(_range_hasher(new_size, plan))


# --- Verification ------------------------------------------------------------------------------


class _DerivedRows:
    """SubjectDisclosure rows in (entry_index, subject_id) order, taken entry by entry."""

    def __init__(self, rows: Iterator[tuple[int, int, int, int]]) -> None:
        self._rows = rows
        self._next: tuple[int, int, int, int] | None = next(rows, None)

    def peek_entry(self) -> int | None:
        return None if self._next is None else self._next[0]

    def take(self, entry: int) -> list[tuple[int, int, int]]:
        out = []
        while self._next is not None and self._next[0] == entry:
            out.append(self._next[1:])
            self._next = next(self._rows, None)
        return out


def _derived_rows(chunk: int = 50_000) -> Generator[tuple[int, int, int, int], None, None]:
    table = SubjectDisclosure._meta.db_table
    sql = (
        f"SELECT entry_index, subject_id, app_id, mask FROM {table} "  # noqa: S608
        "ORDER BY entry_index, subject_id"
    )
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        raw = connection.connection
        assert raw is not None
        with raw.cursor(name="ledger_verify_derived") as cursor:
            cursor.itersize = chunk
            cursor.execute(sql)
            yield from cursor
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            while batch := cursor.fetchmany(chunk):
                yield from batch


def _records(chunk: int = 500) -> Iterator[tuple]:
    yield from (
        CallRecord.objects.order_by("index")
        .values_list(
            "index",
            "created_at",
            "app_id",
            "actor_id",
            "token_id",
            "endpoint",
            "subject_count",
            "subjects",
            "leaf_hash",
        )
        .iterator(chunk_size=chunk)
    )


def verify_ledger() -> VerifyReport:
    """Recompute the whole ledger and compare it with what is stored.

    Checks, in entry order, that leaf indexes are dense, that every stored leaf hash is
    the RFC 6962 hash of its record's canonical bytes, that every signed tree head's
    signature is valid and its root equals the recomputed root at its size, that the
    head row's size and frontier match, and that the derived index (SubjectDisclosure
    rows, AppReach bitmaps) equals what the records say up to the watermark, and that
    every stored tile (tilestore.py) equals the tile recomputed from the leaf hashes, and
    that on PostgreSQL the partition layout loses no entry and lets every append through
    (partitions.py; its state is in the report's notes). Stops at the first problem and
    names the entry.
    """
    with transaction.atomic():
        rows = _derived_rows()
        try:
            report = _verify(_DerivedRows(rows))
        finally:
            rows.close()  # closes the server-side cursor inside its transaction
    if report.ok and (problem := tilestore.check_tiles()):
        report = VerifyReport(
            ok=False,
            entries=report.entries,
            subject_records=report.subject_records,
            signed_tree_heads=report.signed_tree_heads,
            indexed_upto=report.indexed_upto,
            root_hash=report.root_hash,
            problem=problem,
        )
    return partitions.checked(report)


def _verify(derived: _DerivedRows) -> VerifyReport:
    keys = [signing.public_key(), *signing.retired_public_keys()]
    sths = {
        row.tree_size: SignedTreeHead(
            row.tree_size, row.timestamp_ms, bytes(row.root_hash), bytes(row.signature)
        )
        for row in SignedTreeHeadRow.objects.all()
    }
    upto = indexed_upto()
    reach: dict[tuple[int, int], BitMap] = {}
    frontier: list[bytes] = []
    size = 0
    subject_records = 0
    last_good_sth = 0
    checked_sths = 0

    def fail(index: int | None, problem: str) -> VerifyReport:
        return VerifyReport(
            ok=False,
            entries=size,
            subject_records=subject_records,
            signed_tree_heads=checked_sths,
            indexed_upto=upto,
            root_hash=merkle.frontier_root(frontier),
            bad_index=index,
            problem=problem,
        )

    def check_sth(tree_size: int) -> str | None:
        sth = sths[tree_size]
        if not any(signing.verify_tree_head(sth, key) for key in keys):
            return f"the signed tree head at size {tree_size} has an invalid signature"
        if sth.root_hash != merkle.frontier_root(frontier):
            return (
                f"the recomputed tree at size {tree_size} does not match its signed tree "
                f"head: an entry in [{last_good_sth}, {tree_size}) was altered"
            )
        return None

    if 0 in sths:
        if problem := check_sth(0):
            return fail(0, problem)
        checked_sths += 1

    for (
        index,
        created_at,
        app_id,
        actor_id,
        token_id,
        endpoint,
        count,
        blob,
        stored_leaf,
    ) in _records():
        if index != size:
            return fail(size, f"entry {size} is missing (the next stored entry is {index})")
        blob = bytes(blob)
        try:
            rel = records.unpack_subjects(blob)
        except ValueError as exc:
            return fail(index, f"subjects blob is malformed: {exc}")
        if len(rel) != count:
            return fail(index, f"subject_count {count} but the blob holds {len(rel)} subjects")
        if len(rel) and (
            (rel.masks == 0).any() or (len(rel) > 1 and not (rel.ids[1:] > rel.ids[:-1]).all())
        ):
            return fail(index, "subjects blob is not in canonical form")
        leaf = records.record_leaf_hash(
            index=index,
            created_at=created_at,
            app_id=app_id,
            actor_id=actor_id,
            token_id=token_id,
            endpoint=endpoint,
            subject_count=count,
            subjects=blob,
        )
        if leaf != bytes(stored_leaf):
            return fail(index, "the stored leaf hash does not match the record's contents")
        frontier = merkle.frontier_append(frontier, size, leaf)
        size += 1
        subject_records += count
        if size in sths:
            if problem := check_sth(size):
                return fail(last_good_sth, problem)
            last_good_sth = size
            checked_sths += 1
        # The derived index up to the watermark must say exactly what the record says.
        if index < upto:
            rows = derived.take(index)
            expect = list(
                zip(
                    rel.ids.tolist(),
                    [app_id] * len(rel),
                    rel.masks.tolist(),
                    strict=True,
                )
            )
            if rows != expect:
                return fail(index, "the derived index (SubjectDisclosure rows) differs")
            for bit in range(16):
                hit = rel.ids[(rel.masks >> bit) & 1 == 1]
                if hit.shape[0]:
                    reach.setdefault((app_id, bit), BitMap()).update(_u32(hit))
        stray = derived.peek_entry()
        if stray is not None and stray <= index:
            return fail(stray, "the derived index has rows for an entry it should not have")

    head = LedgerHead.objects.filter(pk=1).first()
    head_size = head.size if head else 0
    if head_size != size:
        return fail(size, f"the ledger head says {head_size} entries but {size} are stored")
    head_frontier = merkle.unpack_frontier(bytes(head.frontier)) if head else []
    if head_frontier != frontier:
        return fail(None, "the ledger head's Merkle frontier does not match the entries")
    beyond = sorted(s for s in sths if s > size)
    if beyond:
        return fail(size, f"a signed tree head covers {beyond[0]} entries but {size} exist")
    if upto > size:
        return fail(size, f"the derived index claims {upto} entries but {size} exist")
    if derived.peek_entry() is not None:
        return fail(derived.peek_entry(), "the derived index has rows beyond the watermark")
    stored_reach = {
        (app, bit): BitMap.deserialize(bytes(blob))
        for app, bit, blob in AppReach.objects.values_list("app_id", "bit", "bitmap")
    }
    expected_reach = reach
    if stored_reach != expected_reach:
        bad = sorted(set(stored_reach) ^ set(expected_reach)) or sorted(
            k for k in expected_reach if stored_reach[k] != expected_reach[k]
        )
        return fail(None, f"the derived reach bitmap of (app, bit) {bad[0]} differs")
    return VerifyReport(
        ok=True,
        entries=size,
        subject_records=subject_records,
        signed_tree_heads=checked_sths,
        indexed_upto=upto,
        root_hash=merkle.frontier_root(frontier),
    )
