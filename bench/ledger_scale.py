"""The ledger as it grows: appends, a person's history, an app's blast radius, and
inclusion and consistency proofs from the C2SP tiles, at growing sizes.

The ledger is grown in steps (default 10,000 -> 100,000 -> 1,000,000 calls, 10 subjects
each: the 1 : 10 ratio of 100 million calls to 1 billion subject records). Each step
bulk-inserts call records whose leaf hashes and frontier are computed as
record_disclosure does, then measures at that size:

- append rate: --appends real record_disclosure() calls, one transaction each;
- tile catch-up (folding the new leaves into tiles), index catch-up;
- history_for_person (first page) and blast_radius of the busiest app (median);
- inclusion proof of a random entry against the latest tree head and consistency proof
  from a random older size (median of --repeat, with the number of SQL queries each
  takes: O(log n), flat in practice);
- one `SELECT 1` round trip, the floor under any query on this machine at this moment;
- the baseline: the same inclusion proof computed from *all* leaf hashes (how proofs
  were made before tiles), at every size up to --baseline-max.

On PostgreSQL the call records are range-partitioned by leaf index (migration 0004,
consentry/ledger/partitions.py), with partitions of --partition-size leaves (default: a
tenth of the largest step, so the largest ledger has ten partitions, as 100 M calls have
at the default 10 M) kept ahead of the head while the ledger grows, as the worker's sweep
keeps them. Each step also reports the layout and, from EXPLAIN, how many partitions a
leaf-range read (a tile), a history page's call fetch and one entry's read scan, and how
long each partition's creation took. --unpartitioned migrates the ledger back to one
table first: the baseline for the same figures.

Optional, after the last step:
- --drill N: grow to N calls past the last partition with no upkeep (the worker down),
  so they land in the default partition; then time the upkeep that moves them out, and
  how long appends waited for it;
- --subject-partitions 10,100: copy the derived SubjectDisclosure rows into tables
  partitioned by entry-index range into that many partitions, and time a person's
  history page on each against the one table (should the derived index be partitioned
  the same way? docs/scaling.md);
- --verify: run `ledger verify` over the largest ledger.

Ratios in the closing JSON: proof time at the largest size over the smallest (about 1:
proofs do not grow with the ledger) and the all-leaves baseline over the tiled proof.

Run: consentry bench ledger_scale [--steps 10000,100000,1000000]
     CONSENTRY_DATABASE_URL=postgres://... consentry bench ledger_scale [--unpartitioned]
Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consentry.ledger.scratch import setup_scratch_django


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="10000,100000,1000000")
    parser.add_argument("--per-call", type=int, default=10)
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--baseline-max", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--partition-size", type=int, default=0, help="default: largest / 10")
    parser.add_argument("--unpartitioned", action="store_true", help="one table (baseline)")
    parser.add_argument("--drill", type=int, default=0)
    parser.add_argument("--subject-partitions", default="")
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--migrate-live", action="store_true", help="with --unpartitioned")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    partition_size = args.partition_size or max(1, steps[-1] // 10)
    os.environ["CONSENTRY_LEDGER_PARTITION_SIZE"] = str(partition_size)

    where = setup_scratch_django("bench_ledger_scale")

    import numpy as np
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from consentry.ledger import api, merkle, partitions, records, tilestore
    from consentry.ledger.models import CallRecord, LedgerHead, SubjectDisclosure

    if args.unpartitioned:
        call_command("migrate", "ledger", "0003", verbosity=0)
    partitioned = partitions.layout().partitioned
    print(f"scratch database: {where}")
    print(partitions.layout().describe())

    # Every partition created, with its timings (partitions.ensure_partitions logs them).
    attaches: list[dict[str, object]] = []
    counted = [0]  # attaches already reported by an earlier step

    class Attaches(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            facts = getattr(record, "ledger_partition", None)
            if isinstance(facts, dict):
                attaches.append(facts)

    logging.getLogger("consentry.ledger").addHandler(Attaches())
    rng = np.random.default_rng(args.seed)
    pick = random.Random(args.seed)
    mask = 0b111
    frontier: list[bytes] = []
    size = 0
    rows: list[dict[str, object]] = []

    def grow(to: int, *, upkeep: bool = True) -> float:
        """Bulk-insert call records up to `to`, keeping partitions ahead like the sweep."""
        nonlocal frontier, size
        start = time.perf_counter()
        created_at = timezone.now()
        batch: list[CallRecord] = []
        first = size
        while size < to:
            ids = np.unique(rng.integers(1, args.people + 1, args.per_call)).astype(np.uint64)
            rel = records.Released(ids, np.full(ids.shape[0], mask, dtype=np.uint16))
            blob = records.pack_subjects(rel)
            app_id = 1 + int(rng.zipf(1.5)) % args.apps
            actor = int(ids[0])
            leaf = records.record_leaf_hash(
                index=size,
                created_at=created_at,
                app_id=app_id,
                actor_id=actor,
                token_id=None,
                endpoint="/v1/me/friends",
                subject_count=len(rel),
                subjects=blob,
            )
            frontier = merkle.frontier_append(frontier, size, leaf)
            batch.append(
                CallRecord(
                    index=size,
                    created_at=created_at,
                    app_id=app_id,
                    actor_id=actor,
                    endpoint="/v1/me/friends",
                    subject_count=len(rel),
                    subjects=blob,
                    leaf_hash=leaf,
                )
            )
            size += 1
            if len(batch) == min(5000, partition_size) or size == to:
                if upkeep:
                    partitions.ensure_partitions()
                with transaction.atomic():
                    CallRecord.objects.bulk_create(batch)
                batch = []
        with transaction.atomic():
            LedgerHead.objects.update_or_create(
                pk=1, defaults={"size": size, "frontier": merkle.pack_frontier(frontier)}
            )
        api._head_hint.clear()
        elapsed = time.perf_counter() - start
        print(f"grew the ledger {first:,} -> {size:,} calls in {elapsed:.1f} s")
        return elapsed

    def append_rate() -> float:
        nonlocal frontier, size
        start = time.perf_counter()
        for i in range(args.appends):
            with transaction.atomic():
                api.record_disclosure(
                    app_id=1 + i % args.apps,
                    actor_id=1 + i,
                    endpoint="/v1/me",
                    released=[(1 + i, mask)],
                )
        elapsed = time.perf_counter() - start
        head = LedgerHead.objects.get(pk=1)
        size = head.size
        frontier = merkle.unpack_frontier(bytes(head.frontier))
        return args.appends / elapsed

    def holder(lay: partitions.Layout, leaf: int) -> str:
        held = lay.holding(leaf) if lay.partitioned else None
        return held.name if held else "ledger_callrecord"

    def scanned(queryset: object) -> set[str]:
        """The tables (partitions) a query's plan reads, from EXPLAIN (PostgreSQL)."""
        if connection.vendor != "postgresql" or not queryset.exists():  # type: ignore[attr-defined]
            return {"ledger_callrecord"}
        plan = json.loads(queryset.explain(format="json"))  # type: ignore[attr-defined]
        found: set[str] = set()

        def walk(node: dict[str, object]) -> None:
            if "Relation Name" in node:
                found.add(str(node["Relation Name"]))
            for child in node.get("Plans", []):  # type: ignore[attr-defined]
                walk(child)

        walk(plan[0]["Plan"])
        return found

    def queries(fn: Callable[[], object]) -> int:
        connection.queries_log.clear()  # a full log (DEBUG) would make the count 0
        with CaptureQueriesContext(connection) as ctx:
            fn()
        return len(ctx.captured_queries)

    def measure(appends_per_s: float) -> dict[str, object]:
        start = time.perf_counter()
        tilestore.catch_up_tiles()
        tiles_s = time.perf_counter() - start
        start = time.perf_counter()
        api.catch_up_index()
        index_s = time.perf_counter() - start
        sth = api.latest_signed_tree_head()
        n = sth.tree_size
        index = pick.randrange(n)
        old = pick.randrange(1, n)
        proof = api.inclusion_proof(index)
        assert proof.verify(), "inclusion proof does not verify"
        old_root = api.inclusion_proof(0, tree_size=old).sth.root_hash
        assert merkle.verify_consistency(
            old, n, old_root, sth.root_hash, api.consistency_proof(old, n)
        ), "consistency proof does not verify"
        indexes = [pick.randrange(n) for _ in range(args.repeat)]
        olds = iter([pick.randrange(1, n) for _ in range(args.repeat)])
        inclusion_ms = median_ms(lambda: api.inclusion_proof(indexes.pop()), args.repeat)
        consistency_ms = median_ms(lambda: api.consistency_proof(next(olds), n), args.repeat)
        person = int(rng.integers(1, args.people + 1))
        history_ms = median_ms(lambda: api.history_for_person(person), args.repeat)
        radius_ms = median_ms(lambda: api.blast_radius(2), max(3, args.repeat // 5))

        def round_trip() -> None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()

        lay = partitions.layout()
        # A person with a history (subject of a random entry): which partitions a page
        # of their history reads.
        somebody = (
            SubjectDisclosure.objects.filter(entry_index=index)
            .values_list("subject_id", flat=True)
            .first()
        ) or 0
        page = list(
            SubjectDisclosure.objects.filter(subject_id=somebody)
            .order_by("-entry_index")
            .values_list("entry_index", flat=True)[:50]
        )
        grown = attaches[counted[0] :]
        counted[0] = len(attaches)
        row: dict[str, object] = {
            "calls": n,
            "partitions": len(lay.ranges) if partitioned else 1,
            "default_partition_rows": lay.default_rows,
            "partitions_scanned": {
                "tile_leaf_range": len(
                    scanned(CallRecord.objects.filter(index__gte=n - 256, index__lt=n))
                ),
                "history_page_calls": len(scanned(CallRecord.objects.filter(index__in=page))),
                "history_page_calls_spanning": len({holder(lay, i) for i in page}),
                "read_entry": len(scanned(CallRecord.objects.filter(index=index))),
                "whole_ledger": len(scanned(CallRecord.objects.all())),
            },
            "partition_create_ms_max": max((float(a["ms"]) for a in grown), default=None),  # type: ignore[arg-type]
            "appends_waited_ms_max": max(
                (float(a["appends_waited_ms"]) for a in grown if a["appends_waited_ms"]),  # type: ignore[arg-type]
                default=None,
            ),
            "select_1_ms": median_ms(round_trip, args.repeat),
            "subject_records": n * args.per_call,
            "appends_per_s": round(appends_per_s),
            "tile_catch_up_s": round(tiles_s, 2),
            "index_catch_up_s": round(index_s, 2),
            "inclusion_proof_ms": inclusion_ms,
            "inclusion_proof_queries": queries(lambda: api.inclusion_proof(index)),
            "consistency_proof_ms": consistency_ms,
            "consistency_proof_queries": queries(lambda: api.consistency_proof(old, n)),
            "history_ms": history_ms,
            "blast_radius_ms": radius_ms,
            "blast_radius_subjects": len(api.blast_radius(2)),
        }
        if n <= args.baseline_max:

            def all_leaves() -> None:
                fetched = [
                    bytes(h)
                    for h in CallRecord.objects.filter(index__lt=n)
                    .order_by("index")
                    .values_list("leaf_hash", flat=True)
                ]
                assert len(fetched) == n
                merkle.inclusion_path(index, n, merkle.range_hasher(fetched))

            row["all_leaves_proof_ms"] = median_ms(all_leaves, 3)
        return row

    for step in steps:
        grow(step)
        row = measure(append_rate())
        print(json.dumps(row))
        rows.append(row)

    extra: dict[str, object] = {}
    if args.subject_partitions and connection.vendor == "postgresql":
        api.catch_up_index()
        extra["subject_partitions"] = compare_subject_partitions(
            [int(k) for k in args.subject_partitions.split(",")], size, args
        )
        print(json.dumps({"subject_partitions": extra["subject_partitions"]}))
    if args.drill and partitioned:
        lay = partitions.layout()
        target = lay.top + args.drill
        grow(target, upkeep=False)
        stuck = partitions.layout().default_rows
        del attaches[:]
        start = time.perf_counter()
        partitions.ensure_partitions()
        upkeep_s = time.perf_counter() - start
        extra["drill"] = {
            "entries_in_default_partition": stuck,
            "upkeep_s": round(upkeep_s, 2),
            "partitions_created": len(attaches),
            "moved": sum(int(a["moved"]) for a in attaches),  # type: ignore[call-overload]
            "appends_waited_ms_max": max(
                (float(a["appends_waited_ms"]) for a in attaches if a["appends_waited_ms"]),  # type: ignore[arg-type]
                default=None,
            ),
            "steps": attaches[:],
            "default_partition_rows_after": partitions.layout().default_rows,
        }
        print(json.dumps({"drill": extra["drill"]}))
    if args.verify:
        start = time.perf_counter()
        report = api.verify_ledger()
        extra["verify"] = {
            "ok": report.ok,
            "entries": report.entries,
            "s": round(time.perf_counter() - start, 1),
            "notes": report.notes,
        }
        print(json.dumps({"verify": extra["verify"]}))

    if args.migrate_live and not partitioned and connection.vendor == "postgresql":
        extra["migrate_live"] = migrate_while_appending(args)
        print(json.dumps({"migrate_live": extra["migrate_live"]}))

    first, last = rows[0], rows[-1]
    summary = {
        "database": connection.vendor,
        "partitioned": partitioned,
        "partition_size": partition_size if partitioned else None,
        "layout_at_end": partitions.layout().as_dict(),
        "steps": rows,
        "largest_calls": last["calls"],
        "largest_subject_records": last["subject_records"],
        "max_proof_ms": max(
            max(float(r["inclusion_proof_ms"]), float(r["consistency_proof_ms"]))  # type: ignore[arg-type]
            for r in rows
        ),
        "inclusion_ratio_largest_over_smallest": round(
            float(last["inclusion_proof_ms"]) / float(first["inclusion_proof_ms"]),  # type: ignore[arg-type]
            2,
        ),
    }
    baseline = [r for r in rows if "all_leaves_proof_ms" in r]
    if baseline:
        summary["all_leaves_over_tiles_at_largest_baseline"] = round(
            float(baseline[-1]["all_leaves_proof_ms"])  # type: ignore[arg-type]
            / float(baseline[-1]["inclusion_proof_ms"]),  # type: ignore[arg-type]
            1,
        )
    summary.update(extra)
    print(json.dumps(summary))


def migrate_while_appending(args: argparse.Namespace) -> dict[str, object]:
    """Migration 0004 on the grown one-table ledger while another connection appends
    through record_disclosure: how long it took, and what the appends saw meanwhile."""
    import threading

    from django.core.management import call_command
    from django.db import connection, transaction

    from consentry.ledger import api

    latencies: list[float] = []
    errors: list[str] = []
    stop = threading.Event()

    def append() -> None:
        i = 0
        while not stop.is_set():
            start = time.perf_counter()
            try:
                with transaction.atomic():
                    api.record_disclosure(
                        app_id=1, actor_id=1 + i, endpoint="/v1/me", released=[(1 + i, 1)]
                    )
            except Exception as exc:
                errors.append(repr(exc)[:200])
            latencies.append(time.perf_counter() - start)
            i += 1
        connection.close()

    writer = threading.Thread(target=append)
    writer.start()
    time.sleep(1)
    before = len(latencies)
    start = time.perf_counter()
    call_command("migrate", "ledger", verbosity=0)
    took = time.perf_counter() - start
    during = latencies[before : len(latencies)]
    time.sleep(1)
    stop.set()
    writer.join()
    ordered = sorted(during) or [0.0]
    return {
        "migration_s": round(took, 2),
        "appends_during": len(during),
        "append_errors": errors[:3],
        "append_ms_p50": round(ordered[len(ordered) // 2] * 1000, 2),
        "append_ms_p99": round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
        "append_ms_max": round(ordered[-1] * 1000, 2),
    }


def compare_subject_partitions(
    counts: list[int], calls: int, args: argparse.Namespace
) -> dict[str, object]:
    """A person's history page (the query history_for_person runs) on SubjectDisclosure as
    it is, one table with the (subject_id, entry_index) primary key, and on copies of it
    partitioned by entry-index range into each of `counts` partitions."""
    from django.db import connection

    people = random.Random(args.seed).sample(range(1, args.people + 1), 200)
    history = (
        "SELECT entry_index, app_id, mask FROM {table} WHERE subject_id = %s "
        "ORDER BY entry_index DESC LIMIT 50"
    )

    def page_ms(table: str) -> float:
        times = []
        with connection.cursor() as cursor:
            for person in people[:20]:  # warm the cache the way a busy server has it
                cursor.execute(history.format(table=table), [person])
                cursor.fetchall()
            for person in people:
                start = time.perf_counter()
                cursor.execute(history.format(table=table), [person])
                cursor.fetchall()
                times.append(time.perf_counter() - start)
        return round(statistics.median(times) * 1000, 3)

    out: dict[str, object] = {"one_table_ms": page_ms("ledger_subjectdisclosure")}
    for k in counts:
        width = math.ceil(calls / k)
        table = f"bench_subject_by_entry_{k}"
        start = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(
                f"CREATE TABLE {table} (subject_id bigint NOT NULL, entry_index bigint NOT NULL, "
                "app_id bigint NOT NULL, mask integer NOT NULL, "
                "PRIMARY KEY (subject_id, entry_index)) PARTITION BY RANGE (entry_index)"
            )
            for i in range(k):
                cursor.execute(
                    f"CREATE TABLE {table}_{i} PARTITION OF {table} "
                    f"FOR VALUES FROM ({i * width}) TO ({(i + 1) * width})"
                )
            cursor.execute(
                f"INSERT INTO {table} SELECT subject_id, entry_index, app_id, mask "
                "FROM ledger_subjectdisclosure"
            )
            cursor.execute(f"ANALYZE {table}")
        copied = time.perf_counter() - start
        out[f"by_entry_{k}_partitions_ms"] = page_ms(table)
        out[f"by_entry_{k}_copy_s"] = round(copied, 1)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {table}")
    return out


if __name__ == "__main__":
    main()
