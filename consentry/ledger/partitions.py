"""Range partitions of the call records on PostgreSQL (docs/scaling.md, "Partitioning the
call records"; migration 0004 turns the table into a partitioned one).

`ledger_callrecord` is partitioned BY RANGE ("index"): partition `ledger_callrecord_p<start>`
holds leaves [start, end), and the DEFAULT partition `ledger_callrecord_default` takes any
leaf no range partition covers, so an append never fails for want of a partition.
ensure_partitions() keeps CONSENTRY_LEDGER_PARTITIONS_AHEAD (default 2) partitions of
CONSENTRY_LEDGER_PARTITION_SIZE leaves (default 10,000,000) ready beyond the head, and moves
whatever landed in the default partition into range partitions. It runs at `consentry
migrate` (post_migrate), in the worker's lifecycle sweep (every 10 minutes) and from
`consentry ledger partitions --ensure`.

Locks: a partition is built as a plain table, given a CHECK of its range and attached.
ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on the parent, which appends and reads do not
wait for, and ACCESS EXCLUSIVE on the new table and on the default partition while it checks
that the default holds no row of the new range (empty in steady state: milliseconds).
(CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE on the parent and stop every
append and read for that time, which is why it is not used.) Each step is one transaction
under `lock_timeout`: maintenance that cannot get its lock gives up and retries at the next
sweep instead of queueing traffic behind it.

SQLite has no partitions: everything here is a no-op there.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction

from consentry import config

if TYPE_CHECKING:
    from consentry.ledger.api import VerifyReport

logger = logging.getLogger("consentry.ledger")

TABLE = "ledger_callrecord"
HEAD_TABLE = "ledger_ledgerhead"
DEFAULT_PARTITION = f"{TABLE}_default"
COLUMNS = (
    '"index", created_at, app_id, actor_id, token_id, endpoint, subject_count, subjects, leaf_hash'
)
LOCK_TIMEOUT = "2s"
# ensure_partitions() steps hold this advisory lock ("ledger" in ASCII): one process at a time.
_ADVISORY_KEY = 0x6C6564676572
# Ranges starting this many leaves or more above the head are attached without stopping
# appends (see near_the_head): far more appends than one head row commits while a step runs.
GUARD = 100_000
# At most this many partitions per ensure_partitions() call (a guard, never reached in use).
_MAX_STEPS = 1000


def partition_size() -> int:
    """Leaves per partition (CONSENTRY_LEDGER_PARTITION_SIZE, default 10,000,000)."""
    return max(1, int(config.env("LEDGER_PARTITION_SIZE", "10000000")))


def partitions_ahead() -> int:
    """Partitions kept ready beyond the one that takes the next append
    (CONSENTRY_LEDGER_PARTITIONS_AHEAD, default 2)."""
    return max(1, int(config.env("LEDGER_PARTITIONS_AHEAD", "2")))


def partition_name(start: int) -> str:
    return f"{TABLE}_p{start}"


@dataclass(frozen=True)
class Partition:
    """A range partition: leaves [start, end)."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Layout:
    """How the call records are stored: the range partitions in leaf order, the default
    partition and what it holds, and `head`, the leaf the next append gets."""

    vendor: str
    partitioned: bool = False
    ranges: tuple[Partition, ...] = ()
    default: str | None = None
    default_rows: int = 0
    default_first: int | None = None
    default_last: int | None = None
    head: int = 0
    # Below the head, every interval no range partition covers: (lo, hi, rows of it the
    # default partition holds). Appends that found no partition are there; fewer rows than
    # leaves means entries were lost (a partition detached or dropped).
    gaps: tuple[tuple[int, int, int], ...] = ()

    @property
    def top(self) -> int:
        """Where the range partitions end (0 without any)."""
        return max((p.end for p in self.ranges), default=0)

    def holding(self, leaf: int) -> Partition | None:
        return next((p for p in self.ranges if p.start <= leaf < p.end), None)

    def ahead(self) -> int:
        """Range partitions that start beyond the head: ready for the appends to come."""
        return sum(1 for p in self.ranges if p.start > self.head)

    def uncovered(self) -> list[tuple[int, int | None]]:
        """Leaf intervals [lo, hi) no range partition covers (hi None: no end)."""
        out: list[tuple[int, int | None]] = []
        at = 0
        for p in sorted(self.ranges, key=lambda p: p.start):
            if p.start > at:
                out.append((at, p.start))
            at = max(at, p.end)
        out.append((at, None))
        return out

    def problems(self) -> list[str]:
        """What would make an append fail, or shows that entries were lost."""
        if not self.partitioned:
            return []
        out = []
        if self.default is None and self.holding(self.head) is None:
            out.append(
                f"leaf {self.head} (the next append) is in no partition and there is no "
                "default partition: appends fail until `consentry ledger partitions --ensure` "
                "runs"
            )
        for lo, hi, held in self.gaps:
            if held < hi - lo:
                out.append(
                    f"leaves [{lo}, {hi}) are in no range partition and the default partition "
                    f"holds only {held} of them: was a partition detached or dropped?"
                )
        return out

    def notes(self) -> list[str]:
        """What an operator should know: the layout, and upkeep that fell behind."""
        if self.vendor != "postgresql":
            return []
        if not self.partitioned:
            return [f"{TABLE} is not partitioned (migration ledger.0004 is not applied)"]
        out = [self.describe()]
        if self.default_rows:
            out.append(
                f"{self.default_rows} entries (leaves {self.default_first} to "
                f"{self.default_last}) are in the default partition: partition upkeep fell "
                "behind; the worker's next sweep or `consentry ledger partitions --ensure` "
                "moves them into range partitions"
            )
        if not self.ahead() and self.holding(self.head) is not None:
            out.append(
                f"no partition is ready beyond the one taking appends: from leaf {self.top} "
                "appends land in the default partition. Is the worker running? `consentry "
                "ledger partitions --ensure` creates them"
            )
        return out

    def describe(self) -> str:
        if not self.partitioned:
            return f"{TABLE}: one table ({self.vendor})"
        default = (
            "no default partition"
            if self.default is None
            else f"a default partition holding {self.default_rows} entries"
        )
        return (
            f"{TABLE}: {len(self.ranges)} range partitions covering leaves up to {self.top}, "
            f"{self.ahead()} ready beyond the head (leaf {self.head}), {default}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "partitioned": self.partitioned,
            "partitions": [[p.name, p.start, p.end] for p in self.ranges],
            "default_rows": self.default_rows,
            "head": self.head,
            "ahead": self.ahead(),
        }


_BOUND = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


def _bound(text: str) -> int:
    text = text.strip().strip("'")
    if text == "MINVALUE":
        return -(1 << 63)
    if text == "MAXVALUE":
        return (1 << 63) - 1
    return int(text)


def is_partitioned(cursor: Any) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
    row = cursor.fetchone()
    return row is not None and row[0] == "p"


def read_layout(cursor: Any) -> Layout:
    if not is_partitioned(cursor):
        return Layout(vendor="postgresql")
    cursor.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        [TABLE],
    )
    ranges, default = [], None
    for name, bound in cursor.fetchall():
        if bound == "DEFAULT":
            default = name
        elif match := _BOUND.fullmatch(bound):
            ranges.append(Partition(name, _bound(match[1]), _bound(match[2])))
    ranges.sort(key=lambda p: p.start)
    rows, first, last = 0, None, None
    if default is not None:
        cursor.execute(
            f'SELECT count(*), min("index"), max("index") FROM "{default}"'  # noqa: S608
        )
        rows, first, last = cursor.fetchone()
    cursor.execute(f"SELECT size FROM {HEAD_TABLE} WHERE id = 1")  # noqa: S608
    size = cursor.fetchone()
    # Writers that bypass the head row (a bulk load, a bench) count too.
    cursor.execute(f'SELECT max("index") FROM {TABLE}')  # noqa: S608
    highest = cursor.fetchone()[0]
    head = int(max(size[0] if size else 0, 0 if highest is None else highest + 1))
    lay = Layout(
        vendor="postgresql",
        partitioned=True,
        ranges=tuple(ranges),
        default=default,
        default_rows=int(rows),
        default_first=first,
        default_last=last,
        head=head,
    )
    gaps = []
    for lo, hi in lay.uncovered():
        if lo >= head:
            break
        end = head if hi is None else min(hi, head)
        held = 0
        if default is not None and rows:
            cursor.execute(
                f'SELECT count(*) FROM "{default}" WHERE "index" >= %s AND "index" < %s',  # noqa: S608
                [lo, end],
            )
            held = int(cursor.fetchone()[0])
        gaps.append((lo, end, held))
    return replace(lay, gaps=tuple(gaps))


def layout(using: str = DEFAULT_DB_ALIAS) -> Layout:
    """The call records' partition layout now (a plain one-table layout on SQLite)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return Layout(vendor=connection.vendor)
    with connection.cursor() as cursor:
        return read_layout(cursor)


def _align_up(leaf: int, size: int) -> int:
    """The first partition boundary above `leaf` (boundaries are multiples of `size`)."""
    return (leaf // size + 1) * size


def next_step(lay: Layout, ahead: int, size: int) -> tuple[int, int] | None:
    """The range [start, end) of the partition to create next, or None when the layout is
    as it should be. Pure, so the plan can be tested without a database.

    In order: (1) while the head (the next leaf) is in no range partition, appends land in
    the default partition, so the partition from the head onwards comes first; (2) rows in
    the default partition are moved into their partitions, one aligned range at a time and
    only below the head; (3) holes above the head are filled; (4) partitions are added at
    the top while the range partitions reach no more than `ahead` x `size` leaves beyond
    the head (with aligned partitions: until `ahead` whole partitions are ready beyond the
    one taking appends). Boundaries are multiples of `size`, except where the first
    partition (migration 0004) or (1) made them otherwise."""
    head = lay.head
    uncovered = lay.uncovered()
    for lo, hi in uncovered:
        if lo <= head and (hi is None or head < hi):
            end = _align_up(head, size)
            return head, end if hi is None else min(end, hi)
    first = lay.default_first
    if lay.default_rows and first is not None and first < head:
        for lo, hi in uncovered:
            if lo <= first and (hi is None or first < hi):
                start = max(lo, first // size * size)
                end = min(_align_up(start, size), head)
                return start, end if hi is None else min(end, hi)
    for lo, hi in uncovered:
        # A hole above the head (left by (1)): filled before appends reach it. Holes below
        # the head are left alone: a detached partition may come back.
        if hi is not None and lo > head:
            return lo, min(hi, _align_up(lo, size))
    if lay.top - head <= ahead * size:
        return lay.top, _align_up(lay.top, size)
    return None


def near_the_head(lay: Layout, start: int, end: int) -> bool:
    """Whether attaching [start, end) could race an append: true when the range is not
    wholly below the head and starts less than GUARD leaves above it.

    An INSERT plans its partition routing before it waits for the head row, so an append
    planned just before an ATTACH commits may route its leaf to the default partition
    after the attach: if the new range holds that leaf, PostgreSQL refuses the row
    (it violates the default partition's new constraint). Ranges wholly below the head
    hold no leaf still to come; ranges GUARD leaves above it cannot be reached during one
    step. For the rest, the step takes SHARE on the parent first: it waits for the appends
    in flight, and appends that follow plan after the attach."""
    return end > lay.head and start - lay.head < GUARD


@contextmanager
def ddl_lock_timeout(cursor: Any) -> Iterator[None]:
    """lock_timeout for the DDL of one step, put back afterwards (SET LOCAL would outlive
    the step when it runs inside a caller's transaction). Use it inside the step's
    transaction.atomic()."""
    cursor.execute("SELECT current_setting('lock_timeout')")
    before = cursor.fetchone()[0]
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
    yield
    # Not reached on an error, whose rollback (to the step's savepoint) undoes the setting.
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])


def _create(cursor: Any, lay: Layout, start: int, end: int) -> int:
    """Create and attach the partition of leaves [start, end), first moving into it any of
    those leaves the default partition holds; returns how many it moved."""
    name = partition_name(start)
    cursor.execute(f'CREATE TABLE "{name}" (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING STORAGE)')
    moved = 0
    default = lay.default
    if default and lay.default_rows:
        cursor.execute(
            f'SELECT 1 FROM "{default}" WHERE "index" >= %s AND "index" < %s LIMIT 1',  # noqa: S608
            [start, end],
        )
        if cursor.fetchone():
            # EXCLUSIVE: appends that land in the default partition wait, reads go on.
            cursor.execute(f'LOCK TABLE "{default}" IN EXCLUSIVE MODE')
            cursor.execute(
                f'INSERT INTO "{name}" ({COLUMNS}) SELECT {COLUMNS} FROM "{default}" '  # noqa: S608
                'WHERE "index" >= %s AND "index" < %s ORDER BY "index"',
                [start, end],
            )
            cursor.execute(
                f'DELETE FROM "{default}" WHERE "index" >= %s AND "index" < %s',  # noqa: S608
                [start, end],
            )
            moved = cursor.rowcount
    # The CHECK proves the range, so ATTACH does not scan the new table under its lock.
    cursor.execute(
        f'ALTER TABLE "{name}" ADD CONSTRAINT "{name}_range" '
        f'CHECK ("index" >= {int(start)} AND "index" < {int(end)})'
    )
    cursor.execute(
        f'ALTER TABLE {TABLE} ATTACH PARTITION "{name}" '
        f"FOR VALUES FROM ({int(start)}) TO ({int(end)})"
    )
    cursor.execute(f'ALTER TABLE "{name}" DROP CONSTRAINT "{name}_range"')
    return moved


def ensure_partitions(
    *, ahead: int | None = None, size: int | None = None, using: str = DEFAULT_DB_ALIAS
) -> list[str]:
    """Bring the layout to where it should be: a default partition, the default partition's
    rows moved into range partitions, and `ahead` partitions of `size` leaves ready beyond
    the head. One transaction per partition, serialised between processes by an advisory
    lock; idempotent. Returns the names of the partitions created (none on SQLite, or
    before migration 0004). Run it outside a transaction: inside one, its locks last until
    the caller commits.

    A lock not granted within LOCK_TIMEOUT ends the call with a warning (the next sweep
    tries again): maintenance never makes traffic queue behind it for longer than that."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    ahead = partitions_ahead() if ahead is None else ahead
    size = partition_size() if size is None else max(1, size)
    created: list[str] = []
    try:
        for _ in range(_MAX_STEPS):
            began = time.perf_counter()
            appends_stopped: float | None = None
            with transaction.atomic(using=using), connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_ADVISORY_KEY])
                if not cursor.fetchone()[0]:
                    return created  # another process is at it
                lay = read_layout(cursor)
                if not lay.partitioned:
                    return created
                with ddl_lock_timeout(cursor):
                    if lay.default is None:
                        cursor.execute(
                            f'CREATE TABLE "{DEFAULT_PARTITION}" PARTITION OF {TABLE} DEFAULT'
                        )
                        created.append(DEFAULT_PARTITION)
                        continue
                    step = next_step(lay, ahead, size)
                    if step is not None and near_the_head(lay, *step):
                        cursor.execute(f"LOCK TABLE ONLY {TABLE} IN SHARE MODE")
                        appends_stopped = time.perf_counter()
                        # Appends now wait; so that they wait milliseconds, not a long
                        # reader's lifetime, the default partition is taken at once or never.
                        cursor.execute(
                            f'LOCK TABLE "{lay.default}" IN ACCESS EXCLUSIVE MODE NOWAIT'
                        )
                        lay = read_layout(cursor)  # the head cannot move any more
                        step = next_step(lay, ahead, size)
                    if step is None:
                        return created
                    moved = _create(cursor, lay, *step)
            _log_step(partition_name(step[0]), step, began, appends_stopped, moved)
            created.append(partition_name(step[0]))
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        logger.warning("ledger partitions: a lock was not granted in %s; will retry", LOCK_TIMEOUT)
    return created


def _log_step(
    name: str, step: tuple[int, int], began: float, appends_stopped: float | None, moved: int
) -> None:
    done = time.perf_counter()
    facts = {
        "name": name,
        "start": step[0],
        "end": step[1],
        "ms": round((done - began) * 1000, 2),
        "appends_waited_ms": None
        if appends_stopped is None
        else round((done - appends_stopped) * 1000, 2),
        "moved": moved,
    }
    waited = (
        "appends did not wait"
        if appends_stopped is None
        else f"appends waited {facts['appends_waited_ms']} ms"
    )
    logger.log(
        logging.WARNING if moved else logging.INFO,
        "created %s for leaves [%d, %d) in %s ms, %s%s",
        name,
        step[0],
        step[1],
        facts["ms"],
        waited,
        f"; moved {moved} entries there from the default partition" if moved else "",
        extra={"ledger_partition": facts},
    )


def checked(report: VerifyReport) -> VerifyReport:
    """`report` (api.verify_ledger) with the partition layout's notes, failed when the
    layout would make appends fail or has lost a range of entries."""
    lay = layout()
    notes = [*report.notes, *lay.notes()]
    problems = lay.problems()
    if not problems:
        return replace(report, notes=notes)
    if report.ok:
        return replace(report, ok=False, problem=problems[0], notes=notes)
    return replace(report, problem=f"{report.problem} ({problems[0]})", notes=notes)
