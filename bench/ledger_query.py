"""Ledger queries at scale: one person's history and one app's blast radius over a
ledger of 10 million subject records (default: 2,000 calls of 5,000 subjects).

Half of the calls belong to one app (a harvesting quiz) whose subjects cover exactly
--reach people (default 1,000,000: the first reach/5,000 of its calls walk a random
permutation of them, the rest sample them at random); the other calls are spread over 50
apps and a world of --world people. The call records are built fast with direct bulk
inserts whose leaf hashes, Merkle frontier and signed tree head are computed exactly as
record_disclosure does (the ledger verifies), then catch_up_index() derives the index.

Figures: build time, index catch-up time, history_for_person (median of --repeat runs,
first page of 50), blast_radius and subjects_reached of the quiz app (median), and with
--verify the time of a full `consentry ledger verify`.

Run: .venv/bin/python bench/ledger_query.py [--calls 2000 --per-call 5000 --verify]
     CONSENTRY_DATABASE_URL=postgres://... .venv/bin/python bench/ledger_query.py
Ends with one line of JSON holding the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consentry.ledger.scratch import setup_scratch_django

QUIZ_APP = 1


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--per-call", type=int, default=5000)
    parser.add_argument("--reach", type=int, default=1_000_000)
    parser.add_argument("--world", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--verify", action="store_true", help="also time ledger verify")
    args = parser.parse_args()

    where = setup_scratch_django("bench_ledger_query")

    import numpy as np
    from django.db import connection, transaction
    from django.utils import timezone

    from consentry.grants.permissions import fields_to_mask
    from consentry.ledger import api, merkle, records
    from consentry.ledger.models import CallRecord, LedgerHead

    rng = np.random.default_rng(args.seed)
    masks = np.array(
        [
            fields_to_mask({"id", "name", "picture"}),
            fields_to_mask({"id", "name", "picture", "birthday", "likes"}),
            fields_to_mask({"id", "name", "hometown", "current_city", "relationship_status"}),
        ],
        dtype=np.uint16,
    )
    permutation = rng.permutation(np.arange(1, args.reach + 1, dtype=np.uint64))
    walks = args.reach // args.per_call

    def subjects_for(i: int) -> np.ndarray:
        if i % 2 == 0 and i // 2 < walks:
            j = i // 2
            return np.sort(permutation[j * args.per_call : (j + 1) * args.per_call])
        top = args.reach if i % 2 == 0 else args.world
        ids = np.unique(rng.integers(1, top + 1, args.per_call + args.per_call // 4))
        return np.sort(rng.choice(ids, args.per_call, replace=False)).astype(np.uint64)

    print(f"scratch database: {where}")
    start = time.perf_counter()
    frontier: list[bytes] = []
    batch: list[CallRecord] = []
    total = 0
    created_at = timezone.now()
    for i in range(args.calls):
        ids = subjects_for(i)
        rel = records.Released(ids, masks[rng.integers(0, len(masks), ids.shape[0])])
        blob = records.pack_subjects(rel)
        app_id = QUIZ_APP if i % 2 == 0 else 2 + i % 50
        actor = int(rng.integers(1, args.world + 1))
        leaf = records.record_leaf_hash(
            index=i,
            created_at=created_at,
            app_id=app_id,
            actor_id=actor,
            token_id=None,
            endpoint="/v1/me/friends",
            subject_count=len(rel),
            subjects=blob,
        )
        frontier = merkle.frontier_append(frontier, i, leaf)
        batch.append(
            CallRecord(
                index=i,
                created_at=created_at,
                app_id=app_id,
                actor_id=actor,
                endpoint="/v1/me/friends",
                subject_count=len(rel),
                subjects=blob,
                leaf_hash=leaf,
            )
        )
        total += len(rel)
        if len(batch) == 100 or i == args.calls - 1:
            with transaction.atomic():
                CallRecord.objects.bulk_create(batch)
            batch = []
    with transaction.atomic():
        LedgerHead.objects.update_or_create(
            pk=1, defaults={"size": args.calls, "frontier": merkle.pack_frontier(frontier)}
        )
    sth = api.latest_signed_tree_head()
    build_s = time.perf_counter() - start
    print(f"built {args.calls} calls, {total:,} subject records in {build_s:.1f} s")

    start = time.perf_counter()
    indexed = api.catch_up_index()
    catch_up_s = time.perf_counter() - start
    print(f"index catch-up of {indexed} entries: {catch_up_s:.1f} s")

    # A person inside the quiz's reach: found in several of its calls and in others'.
    person = int(permutation[12345])
    history_s, history = timed(lambda: api.history_for_person(person), args.repeat)
    assert isinstance(history, list)
    radius_s, radius = timed(lambda: api.blast_radius(QUIZ_APP), max(1, args.repeat // 2))
    assert isinstance(radius, dict)
    reached_s, reached = timed(lambda: api.subjects_reached(QUIZ_APP), args.repeat)
    proof_s, proof = timed(lambda: api.inclusion_proof(args.calls // 3), args.repeat)
    assert proof.verify()  # type: ignore[attr-defined]
    print(f"history of person {person}: {len(history)} disclosures in {history_s * 1000:.1f} ms")
    print(f"blast radius of app {QUIZ_APP}: {len(radius):,} subjects in {radius_s * 1000:.0f} ms")
    print(f"subjects reached (bitmap): {len(reached):,} in {reached_s * 1000:.1f} ms")  # type: ignore[arg-type]
    print(f"inclusion proof at size {sth.tree_size}: {proof_s * 1000:.1f} ms")
    figures: dict[str, object] = {
        "database": connection.vendor,
        "calls": args.calls,
        "subject_records": total,
        "build_seconds": round(build_s, 2),
        "catch_up_seconds": round(catch_up_s, 2),
        "catch_up_subject_records_per_s": round(total / catch_up_s),
        "history_ms": round(history_s * 1000, 2),
        "history_entries": len(history),
        "blast_radius_ms": round(radius_s * 1000, 1),
        "blast_radius_subjects": len(radius),
        "subjects_reached_ms": round(reached_s * 1000, 2),
        "inclusion_proof_ms": round(proof_s * 1000, 2),
    }
    if args.verify:
        start = time.perf_counter()
        report = api.verify_ledger()
        verify_s = time.perf_counter() - start
        print(f"ledger verify: {report.summary()} in {verify_s:.1f} s")
        figures["verify_seconds"] = round(verify_s, 1)
        figures["verify_ok"] = report.ok
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
