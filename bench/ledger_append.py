"""Ledger append rate: subject-records per second through record_disclosure (canonical
encoding, RFC 6962 leaf hash, Merkle frontier update under the head-row lock, a signed
tree head every CONSENTRY_LEDGER_STH_INTERVAL entries) against plain inserts.

Baselines, measured in the same run on the same scratch database:
  plain   - the SAME call rows with the SAME packed blobs inserted with the same INSERT
            statement into the same table, one transaction per call, index from a counter:
            no leaf hash, no head-row lock/update, no signing. The difference to the
            ledger is exactly what tamper evidence costs. Packing the (subject, mask) pairs
            is counted in both, since any storage has to serialize them. TARGET: the
            ledger runs at >= 0.5 x this rate.
  per-row - one plain row per subject record (the naive design), bulk-inserted per call
            (executemany on SQLite, binary COPY on PostgreSQL). For scale only.

Payload mix per 100 calls: 80 of 1 subject (/v1/me), 18 of 50 subjects and 2 of 5,000
subjects (/v1/me/friends); --calls sets how many calls (default 2,000, ~220,000 subject
records). Each variant runs --rounds times alternating; the best round counts.

Run: .venv/bin/python bench/ledger_append.py            (SQLite scratch file)
     CONSENTRY_DATABASE_URL=postgres://... .venv/bin/python bench/ledger_append.py
Ends with one line of JSON holding the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consentry.ledger.scratch import setup_scratch_django


def payloads(calls: int, seed: int) -> list[tuple[int, int, str, list[tuple[int, int]]]]:
    import numpy as np

    from consentry.grants.permissions import fields_to_mask

    rng = np.random.default_rng(seed)
    masks = [
        fields_to_mask({"id", "name", "picture"}),
        fields_to_mask({"id", "name", "picture", "birthday"}),
        fields_to_mask({"id", "name", "birthday", "hometown", "likes"}),
    ]
    out = []
    for i in range(calls):
        slot = i % 100
        n = 5000 if slot in (37, 91) else 50 if slot < 18 else 1
        actor = int(rng.integers(1, 1_000_000))
        if n == 1:
            subjects = [actor]
        else:
            subjects = np.unique(rng.integers(1, 1_000_000, n + n // 10))[:n].tolist()
        picks = rng.integers(0, len(masks), len(subjects)).tolist()
        released = [(s, masks[p]) for s, p in zip(subjects, picks, strict=True)]
        endpoint = "/v1/me" if n == 1 else "/v1/me/friends"
        out.append((1 + i % 7, actor, endpoint, released))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2014)
    args = parser.parse_args()

    where = setup_scratch_django("bench_ledger_append")

    import numpy as np
    from django.db import connection, transaction
    from django.utils import timezone

    from consentry.ledger import api, records
    from consentry.ledger.models import CallRecord, LedgerHead, SignedTreeHead, SubjectDisclosure

    work = payloads(args.calls, args.seed)
    insert = api._statements()["insert"]  # the very INSERT record_disclosure runs
    subject_records = sum(len(p[3]) for p in work)

    def reset() -> None:
        with transaction.atomic():
            CallRecord.objects.all().delete()
            SubjectDisclosure.objects.all().delete()
            SignedTreeHead.objects.all().delete()
            LedgerHead.objects.all().delete()

    def run_ledger() -> float:
        reset()
        start = time.perf_counter()
        for app_id, actor, endpoint, released in work:
            with transaction.atomic():
                api.record_disclosure(
                    app_id=app_id, actor_id=actor, endpoint=endpoint, released=released
                )
        api.latest_signed_tree_head()
        return time.perf_counter() - start

    def run_plain() -> float:
        reset()
        start = time.perf_counter()
        for index, (app_id, actor, endpoint, released) in enumerate(work):
            rel = records.normalize(released)
            subjects = records.pack_subjects(rel)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    insert,
                    [
                        index,
                        connection.ops.adapt_datetimefield_value(timezone.now()),
                        app_id,
                        actor,
                        None,
                        endpoint,
                        len(rel),
                        subjects,
                        b"",
                    ],
                )
        return time.perf_counter() - start

    def run_per_row() -> float:
        reset()
        start = time.perf_counter()
        for index, (app_id, _actor, _endpoint, released) in enumerate(work):
            arr = np.asarray(released, dtype=np.int64)
            n = arr.shape[0]
            with transaction.atomic():
                api._insert_disclosures(
                    arr[:, 0], np.full(n, index), np.full(n, app_id), arr[:, 1].astype(np.int32)
                )
        return time.perf_counter() - start

    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, run in (("plain", run_plain), ("ledger", run_ledger), ("per_row", run_per_row)):
            elapsed = run()
            best[name] = min(best.get(name, elapsed), elapsed)
    # Leave a ledger behind that verifies, as a check that the benchmark measured real work.
    run_ledger()
    report = api.verify_ledger()
    if not report.ok:
        raise SystemExit(f"the benchmark ledger does not verify: {report.summary()}")

    rates = {name: subject_records / seconds for name, seconds in best.items()}
    figures = {
        "database": connection.vendor,
        "calls": len(work),
        "subject_records": subject_records,
        "sth_interval": api.sth_interval(),
        "ledger_seconds": round(best["ledger"], 3),
        "plain_seconds": round(best["plain"], 3),
        "per_row_seconds": round(best["per_row"], 3),
        "ledger_subject_records_per_s": round(rates["ledger"]),
        "plain_subject_records_per_s": round(rates["plain"]),
        "per_row_subject_records_per_s": round(rates["per_row"]),
        "ledger_calls_per_s": round(len(work) / best["ledger"]),
        "plain_calls_per_s": round(len(work) / best["plain"]),
        "ratio_ledger_to_plain": round(rates["ledger"] / rates["plain"], 3),
        "ratio_ledger_to_per_row": round(rates["ledger"] / rates["per_row"], 3),
        "target_ratio": 0.5,
    }
    print(f"scratch database: {where}")
    print(f"{len(work)} calls, {subject_records} subject records, best of {args.rounds} rounds")
    print(
        f"ledger  : {figures['ledger_subject_records_per_s']:>12,} subject records/s "
        f"({figures['ledger_calls_per_s']:,} calls/s)"
    )
    print(
        f"plain   : {figures['plain_subject_records_per_s']:>12,} subject records/s "
        f"({figures['plain_calls_per_s']:,} calls/s)"
    )
    print(f"per-row : {figures['per_row_subject_records_per_s']:>12,} subject records/s")
    print(
        f"ledger / plain = {figures['ratio_ledger_to_plain']} (target >= 0.5); "
        f"ledger / per-row = {figures['ratio_ledger_to_per_row']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
