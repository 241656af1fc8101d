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

Ratios in the closing JSON: proof time at the largest size over the smallest (about 1:
proofs do not grow with the ledger) and the all-leaves baseline over the tiled proof.

Run: consentry bench ledger_scale [--steps 10000,100000,1000000]
     CONSENTRY_DATABASE_URL=postgres://... consentry bench ledger_scale
Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
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
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]

    where = setup_scratch_django("bench_ledger_scale")

    import numpy as np
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from consentry.ledger import api, merkle, records, tilestore
    from consentry.ledger.models import CallRecord, LedgerHead

    print(f"scratch database: {where}")
    rng = np.random.default_rng(args.seed)
    pick = random.Random(args.seed)
    mask = 0b111
    frontier: list[bytes] = []
    size = 0
    rows: list[dict[str, object]] = []

    def grow(to: int) -> float:
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
            if len(batch) == 5000 or size == to:
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

        row: dict[str, object] = {
            "calls": n,
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

    first, last = rows[0], rows[-1]
    summary = {
        "database": connection.vendor,
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
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
