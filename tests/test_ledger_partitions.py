"""The call records partitioned by leaf-index range on PostgreSQL (consentry/ledger/
partitions.py, migration ledger.0004): appends across partition boundaries, partitions
kept ahead of the head, the default partition as a safety net, verify, proofs, history
and blast radius across partitions, and the migration both ways with rows present. On
SQLite the migration and the upkeep are no-ops and the ledger works as before."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from importlib import import_module
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from consentry.grants.permissions import RELEASE_BIT
from consentry.ledger import api, merkle, partitions
from consentry.ledger.models import CallRecord
from consentry.ledger.partitions import Layout, Partition, next_step

pytestmark = pytest.mark.django_db

NAME = RELEASE_BIT["name"]
BIRTHDAY = RELEASE_BIT["birthday"]
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="partitions exist on PostgreSQL only (SQLite keeps one table: see the SQLite tests)",
)
on_sqlite = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="checks the SQLite no-op (PostgreSQL: the tests above)"
)
SIZE = 4  # leaves per partition in these tests


def record(i: int) -> int:
    """Entry i: app 1 + i % 3 reads the actor's name; subject 7's birthday every time."""
    with transaction.atomic():
        return api.record_disclosure(
            app_id=1 + i % 3,
            actor_id=100 + i,
            endpoint="/v1/me/friends",
            released=[(100 + i, NAME), (7, BIRTHDAY)],
        )


def sql(query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return cursor.fetchall() if cursor.description else []


def rows_by_partition() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for name, index in sql('SELECT tableoid::regclass::text, "index" FROM ledger_callrecord'):
        out.setdefault(name, []).append(index)
    return {name: sorted(indexes) for name, indexes in out.items()}


def reset_layout(size: int, ahead: int = 2) -> None:
    """Drop every partition (the test database's are empty) and lay them out afresh."""
    lay = partitions.layout()
    for name in [p.name for p in lay.ranges] + ([lay.default] if lay.default else []):
        sql(f'ALTER TABLE ledger_callrecord DETACH PARTITION "{name}"')
        sql(f'DROP TABLE "{name}"')
    partitions.ensure_partitions(size=size, ahead=ahead)


@pytest.fixture
def tiny_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions of SIZE leaves, two ahead, from leaf 0 (CONSENTRY_LEDGER_PARTITION_SIZE)."""
    monkeypatch.setenv("CONSENTRY_LEDGER_PARTITION_SIZE", str(SIZE))
    monkeypatch.setenv("CONSENTRY_LEDGER_PARTITIONS_AHEAD", "2")
    reset_layout(SIZE)


def relations_scanned(queryset: Any) -> set[str]:
    plan = json.loads(queryset.explain(format="json"))
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            found.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def check_reads(n: int) -> None:
    """Everything a reader asks of the ledger, over n entries, against first principles."""
    leaves = [api.read_entry(i).leaf_hash for i in range(n)]
    assert all(api.read_entry(i).recomputed_leaf_hash() == leaves[i] for i in range(n))
    mth = merkle.range_hasher(leaves)
    assert api.latest_signed_tree_head().root_hash == mth(0, n)
    for i in range(n):
        proof = api.inclusion_proof(i)
        assert proof.verify(), i
        assert proof.sth.root_hash == mth(0, n)
    for old in range(1, n):
        path = api.consistency_proof(old, n)
        assert merkle.verify_consistency(old, n, mth(0, old), mth(0, n), path), old
    # Subject 7 is in every entry: its history runs through every partition, page by page.
    seen, before = [], None
    while page := api.history_for_person(7, limit=3, before=before):
        seen += [(d.index, d.app_id, d.actor_id) for d in page]
        before = page[-1].index
    assert seen == [(i, 1 + i % 3, 100 + i) for i in reversed(range(n))]
    assert api.history_for_person(100 + n - 1)[0].index == n - 1
    for app in (1, 2, 3):
        expected = {100 + i: NAME for i in range(n) if 1 + i % 3 == app}
        expected[7] = BIRTHDAY
        assert api.blast_radius(app) == expected
    report = api.verify_ledger()
    assert report.ok, report.summary()
    assert report.entries == n


# --- The plan, without a database ---------------------------------------------------------------


def test_a_fresh_layout_gets_partitions_up_to_two_beyond_the_head() -> None:
    lay = Layout(vendor="postgresql", partitioned=True, default="d")
    made = []
    while step := next_step(lay, 2, 10):
        made.append(step)
        lay = Layout(
            vendor="postgresql",
            partitioned=True,
            ranges=(*lay.ranges, Partition("p", *step)),
            default="d",
        )
    assert made == [(0, 10), (10, 20), (20, 30)]
    assert next_step(Layout("postgresql", True, lay.ranges, "d", head=10), 2, 10) == (30, 40)


def test_appends_stuck_in_the_default_partition_get_their_partition_then_move() -> None:
    """Head at 57 past the last partition [0, 40): appends land in the default partition.
    First the partition from the head on, so appends leave the default; then the default
    partition's rows move, one aligned range at a time below the head; then the top."""
    ranges = (Partition("p0", 0, 40),)
    stuck = Layout("postgresql", True, ranges, "d", 17, 40, 56, head=57)
    assert next_step(stuck, 2, 10) == (57, 60)
    ranges += (Partition("p57", 57, 60),)
    later = Layout("postgresql", True, ranges, "d", 19, 40, 58, head=59)
    assert next_step(later, 2, 10) == (40, 50)
    ranges += (Partition("p40", 40, 50),)
    later = Layout("postgresql", True, ranges, "d", 9, 50, 58, head=59)
    assert next_step(later, 2, 10) == (50, 57)
    ranges += (Partition("p50", 50, 57),)
    assert next_step(Layout("postgresql", True, ranges, "d", head=59), 2, 10) == (60, 70)
    ranges += (Partition("p60", 60, 70),)
    assert next_step(Layout("postgresql", True, ranges, "d", head=59), 2, 10) == (70, 80)
    ranges += (Partition("p70", 70, 80),)
    assert next_step(Layout("postgresql", True, ranges, "d", head=59), 2, 10) is None


def test_only_ranges_near_the_head_stop_appends_while_they_attach() -> None:
    lay = Layout("postgresql", True, (Partition("p0", 0, 10_000_000),), "d", head=9_000_000)
    assert not partitions.near_the_head(lay, 10_000_000, 20_000_000)
    assert partitions.near_the_head(lay, 9_000_000, 10_000_000)
    assert not partitions.near_the_head(lay, 8_000_000, 9_000_000)  # wholly below the head
    assert partitions.near_the_head(replace(lay, head=9_950_000), 10_000_000, 20_000_000)


def test_a_hole_below_the_head_is_left_for_its_partition_to_return() -> None:
    lay = Layout(
        "postgresql",
        True,
        (Partition("p0", 0, 10), Partition("p20", 20, 30), Partition("p30", 30, 40)),
        "d",
        head=25,
        gaps=((10, 20, 0),),
    )
    assert next_step(lay, 2, 10) == (40, 50)
    assert "detached or dropped" in lay.problems()[0]


# --- SQLite: nothing to partition -----------------------------------------------------------------


@on_sqlite
def test_on_sqlite_the_upkeep_is_a_no_op_and_the_ledger_is_one_table() -> None:
    for i in range(6):
        record(i)
    assert partitions.ensure_partitions(size=SIZE) == []
    lay = partitions.layout()
    assert (lay.partitioned, lay.ranges, lay.notes(), lay.problems()) == (False, (), [], [])
    report = api.verify_ledger()
    assert report.ok
    assert report.notes == []


@on_sqlite
@pytest.mark.django_db(transaction=True)  # SQLite migrates outside a transaction only
def test_on_sqlite_the_migration_both_ways_keeps_every_call_record() -> None:
    migrate_back_and_forth()


@on_postgresql
def test_the_migration_backwards_and_forwards_keeps_every_call_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rows span three partitions when it goes back (copied into the first) and one
    table when it comes forward again (attached as the first partition, not copied)."""
    monkeypatch.setenv("CONSENTRY_LEDGER_PARTITION_SIZE", str(SIZE))
    reset_layout(SIZE)
    migrate_back_and_forth()


def migrate_back_and_forth() -> None:
    for i in range(10):
        record(i)
        partitions.ensure_partitions()
    before = list(CallRecord.objects.order_by("index").values_list("index", "leaf_hash"))
    if connection.vendor == "postgresql":
        assert len(rows_by_partition()) == 3
    call_command("migrate", "ledger", "0003", verbosity=0)
    assert not partitions.layout().partitioned
    assert list(CallRecord.objects.order_by("index").values_list("index", "leaf_hash")) == before
    if connection.vendor == "postgresql":  # the append function this code calls (0005)
        with connection.cursor() as cursor:
            cursor.execute(
                import_module("consentry.ledger.migrations.0005_append_function").FUNCTION
            )
    record(10)  # appends still work on the plain table
    assert api.verify_ledger().ok
    call_command("migrate", "ledger", verbosity=0)
    lay = partitions.layout()
    assert lay.partitioned == (connection.vendor == "postgresql")
    assert CallRecord.objects.count() == 11
    if connection.vendor == "postgresql":
        # The plain table became the first partition, with room beyond its last leaf.
        assert lay.ranges[0] == Partition("ledger_callrecord_p0", 0, 16)
        assert rows_by_partition() == {"ledger_callrecord_p0": list(range(11))}
        assert lay.top - lay.head > 2 * SIZE
    for i in range(11, 20):
        record(i)
        partitions.ensure_partitions()
    check_reads(20)


# --- PostgreSQL ---------------------------------------------------------------------------------


@on_postgresql
def test_the_call_records_are_partitioned_by_leaf_index_range() -> None:
    (strategy, key), = sql(
        "SELECT p.partstrat, a.attname FROM pg_partitioned_table p JOIN pg_attribute a "
        "ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = 'ledger_callrecord'::regclass"
    )  # fmt: skip
    assert (strategy, key) == ("r", "index")
    children = {
        name
        for (name,) in sql(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'ledger_callrecord'::regclass"
        )
    }
    size = partitions.partition_size()
    assert children == {
        "ledger_callrecord_default",
        "ledger_callrecord_p0",
        f"ledger_callrecord_p{size}",
        f"ledger_callrecord_p{2 * size}",
    }
    # The primary key and the app_id index are the parent's, one per partition.
    indexes = sql(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'ledger_callrecord' ORDER BY 1"
    )
    assert [d for (d,) in indexes] == [
        'CREATE INDEX ledger_callrecord_app_id_d7e9500f ON ONLY public.ledger_callrecord '
        "USING btree (app_id)",
        "CREATE UNIQUE INDEX ledger_callrecord_pkey ON ONLY public.ledger_callrecord "
        'USING btree (index)',
    ]  # fmt: skip
    storage = sql(
        "SELECT c.relname, a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE a.attname = 'subjects' AND c.relname LIKE 'ledger_callrecord%%'"
    )
    assert {s for _, s in storage} == {"e"}  # EXTERNAL, as migration 0002 set it


@on_postgresql
def test_appends_cross_partition_boundaries_with_partitions_kept_ahead(
    tiny_partitions: None,
) -> None:
    for i in range(23):
        assert record(i) == i
        if i % 3 == 2:  # the sweep, now and then
            partitions.ensure_partitions()
            lay = partitions.layout()
            assert lay.ahead() >= 2
            assert lay.top > lay.head + 2 * SIZE
    partitions.ensure_partitions()
    placed = rows_by_partition()
    assert "ledger_callrecord_default" not in placed
    assert placed == {
        f"ledger_callrecord_p{start}": list(range(start, min(start + SIZE, 23)))
        for start in range(0, 23, SIZE)
    }
    assert api.verify_ledger().notes == [partitions.layout().describe()]
    check_reads(23)


@on_postgresql
def test_appends_past_every_partition_land_in_the_default_and_upkeep_moves_them(
    tiny_partitions: None, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(21):  # partitions end at 12: entries 12 to 20 find none
        record(i)
    assert rows_by_partition()["ledger_callrecord_default"] == list(range(12, 21))
    report = api.verify_ledger()
    assert report.ok, report.summary()
    assert any(
        "9 entries (leaves 12 to 20) are in the default partition" in n for n in report.notes
    )
    with caplog.at_level(logging.WARNING, logger="consentry.ledger"):
        created = partitions.ensure_partitions()
    assert created[0] == "ledger_callrecord_p21"  # from the head on: appends leave the default
    assert "moved 4 entries there from the default partition" in caplog.text
    placed = rows_by_partition()
    assert "ledger_callrecord_default" not in placed
    assert placed["ledger_callrecord_p12"] == [12, 13, 14, 15]
    assert placed["ledger_callrecord_p20"] == [20]
    lay = partitions.layout()
    assert lay.uncovered() == [(lay.top, None)]
    assert lay.ahead() >= 2
    for i in range(21, 30):
        record(i)
    assert "ledger_callrecord_default" not in rows_by_partition()
    check_reads(30)


@on_postgresql
def test_range_reads_and_history_prune_partitions(tiny_partitions: None) -> None:
    for i in range(12):
        record(i)
    leaf_range = CallRecord.objects.filter(index__gte=4, index__lt=8).values_list("leaf_hash")
    assert relations_scanned(leaf_range) == {"ledger_callrecord_p4"}
    history_fetch = CallRecord.objects.filter(index__in=[1, 9]).values_list("created_at")
    assert relations_scanned(history_fetch) == {"ledger_callrecord_p0", "ledger_callrecord_p8"}
    assert relations_scanned(CallRecord.objects.filter(index=5)) == {"ledger_callrecord_p4"}


@on_postgresql
def test_verify_names_a_detached_partition(tiny_partitions: None) -> None:
    for i in range(10):
        record(i)
    sql('ALTER TABLE ledger_callrecord DETACH PARTITION "ledger_callrecord_p4"')
    report = api.verify_ledger()
    assert not report.ok
    assert report.problem == (
        "entry 4 is missing (the next stored entry is 8) (leaves [4, 8) are in no range "
        "partition and the default partition holds only 0 of them: was a partition "
        "detached or dropped?)"
    )
    with pytest.raises(CommandError, match="detached or dropped"):
        call_command("ledger_partitions")
    # Upkeep does not paper over the hole; attaching the partition again heals it.
    partitions.ensure_partitions()
    assert partitions.layout().holding(5) is None
    sql(
        "ALTER TABLE ledger_callrecord ATTACH PARTITION ledger_callrecord_p4 "
        "FOR VALUES FROM (4) TO (8)"
    )
    assert api.verify_ledger().ok


@on_postgresql
def test_a_missing_default_partition_is_a_problem_upkeep_repairs(tiny_partitions: None) -> None:
    sql("ALTER TABLE ledger_callrecord DETACH PARTITION ledger_callrecord_default")
    sql("DROP TABLE ledger_callrecord_default")
    for i in range(12):
        record(i)
    lay = partitions.layout()
    assert lay.problems() == [
        "leaf 12 (the next append) is in no partition and there is no default partition: "
        "appends fail until `consentry ledger partitions --ensure` runs"
    ]
    assert not api.verify_ledger().ok
    created = partitions.ensure_partitions()
    assert created[0] == "ledger_callrecord_default"
    record(12)
    assert api.verify_ledger().ok


@on_postgresql
def test_migrate_and_the_worker_sweep_keep_partitions_ahead(
    tiny_partitions: None, run_tasks: Any
) -> None:
    from consentry.developers.tasks import ensure_lifecycle_scheduled

    for i in range(9):
        record(i)
    assert partitions.layout().ahead() == 0
    ensure_lifecycle_scheduled()
    run_tasks()
    assert partitions.layout().ahead() == 2
    for i in range(9, 18):
        record(i)
    call_command("migrate", verbosity=0)  # post_migrate: every `consentry migrate`
    lay = partitions.layout()
    assert (lay.ahead(), lay.default_rows) == (2, 0)
    out = json.loads(_command_output("ledger_partitions"))
    assert (out["head"], out["ahead"], out["default_rows"]) == (18, 2, 0)


def _command_output(*args: str) -> str:
    import io

    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- PostgreSQL, with concurrent sessions (committed data: the layout is put back after) -----


@pytest.fixture
def committed_tiny_partitions(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    size = partitions.partition_size()
    monkeypatch.setenv("CONSENTRY_LEDGER_PARTITION_SIZE", str(SIZE))
    reset_layout(SIZE)
    yield
    reset_layout(size)


@on_postgresql
def test_appends_go_on_while_upkeep_attaches_partitions(committed_tiny_partitions: None) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def append(n: int) -> None:
        try:
            for i in range(20):
                with transaction.atomic():
                    api.record_disclosure(
                        app_id=n + 1, actor_id=100 * n + i + 1, endpoint="/v1/me",
                        released=[(100 * n + i + 1, NAME)],
                    )  # fmt: skip
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def upkeep() -> None:
        try:
            while not done.is_set():
                partitions.ensure_partitions()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    keeper = threading.Thread(target=upkeep)
    keeper.start()
    writers = [threading.Thread(target=append, args=(n,)) for n in range(3)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    keeper.join()
    assert not errors, errors
    partitions.ensure_partitions()
    assert sorted(CallRecord.objects.values_list("index", flat=True)) == list(range(60))
    assert "ledger_callrecord_default" not in rows_by_partition()
    report = api.verify_ledger()
    assert report.ok, report.summary()


@on_postgresql
def test_upkeep_that_cannot_get_its_lock_gives_up_and_appends_go_on(
    committed_tiny_partitions: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A long reader of the whole table (verify) holds a lock on the default partition that
    ATTACH must wait for: upkeep waits lock_timeout, gives up with a warning, and appends
    into the range partitions never wait for it."""
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "300ms")
    for i in range(9):
        record(i)
    reading, release = threading.Event(), threading.Event()

    def long_reader() -> None:
        with transaction.atomic():
            sql("SELECT count(*) FROM ledger_callrecord")
            reading.set()
            release.wait(10)
        connection.close()

    reader = threading.Thread(target=long_reader)
    reader.start()
    reading.wait(10)
    try:
        with caplog.at_level(logging.WARNING, logger="consentry.ledger"):
            start = time.monotonic()
            assert partitions.ensure_partitions() == []
            waited = time.monotonic() - start
        assert "a lock was not granted in 300ms" in caplog.text
        assert waited < 3
        start = time.monotonic()
        record(9)
        assert time.monotonic() - start < 1
    finally:
        release.set()
        reader.join()
    assert partitions.ensure_partitions() == ["ledger_callrecord_p12", "ledger_callrecord_p16"]
    assert api.verify_ledger().ok
