"""The "What apps read about me" page (/privacy/activity/) for a person with --entries
ledger entries (default 100,000) in a ledger of --records call records (default
10,000,000), through the whole Django stack (test client: middleware, view, template).

The ledger is built with bulk inserts, not through the API: call records with exact RFC
6962 leaf hashes and Merkle frontier (the ledger verifies), and the derived per-person
index rows the ledger's catch-up would write, with the index watermark at the top. Each
call record releases one subject; every (records/entries)-th one is the measured person,
read through themselves or through one of ten friends, by one of twenty apps, spread
evenly over one year.

Measured (p95 and median of --repeat requests each): the first page; a page deep in the
history (the cursor at the middle); filtered by app, by field, by friend, and by a
one-month date range. Baseline, in the same run: the same first page for a person with
50 entries. Each figure is also given as a ratio to that baseline. Then the database part
alone (consentry.privacy.history.history_page, no template) for the first page, the
baseline person, the friend filter and the month.

Run: .venv/bin/python bench/history_page.py [--records 10000000 --entries 100000]
     CONSENTRY_DATABASE_URL=postgres://... .venv/bin/python bench/history_page.py
     consentry bench history_page -- --records 1000000
Ends with one line of JSON holding the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consentry.ledger.scratch import setup_scratch_django

PERSON = 1  # the measured person
SMALL = 2  # the baseline person (50 entries)
FRIENDS = list(range(3, 13))
APPS = 20
WORLD = 1_000_000
BATCH = 50_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--seed", type=int, default=2014)
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="measure the scratch database a previous run built (same arguments)",
    )
    args = parser.parse_args()
    if args.entries * 2 > args.records:
        parser.error("--records must be at least twice --entries")

    where = _reuse_scratch() if args.measure_only else setup_scratch_django("bench_history_page")

    import numpy as np
    from django.conf import settings
    from django.db import connection, transaction
    from django.test import Client
    from django.utils import timezone

    from consentry.grants.permissions import fields_to_mask
    from consentry.ledger import merkle, records
    from consentry.ledger.models import CallRecord, IndexWatermark, LedgerHead
    from consentry.oauth.models import Application
    from consentry.people.models import Person

    settings.ALLOWED_HOSTS.append("testserver")
    rng = np.random.default_rng(args.seed)
    print(f"scratch database: {where}")

    masks = np.array(
        [
            fields_to_mask({"id", "name", "birthday"}),
            fields_to_mask({"id", "name", "picture"}),
            fields_to_mask({"id", "birthday", "hometown"}),
        ],
        dtype=np.int64,
    )
    n = args.records
    step = n // args.entries
    subject = rng.integers(100, WORLD, n)
    subject[::step][: args.entries] = PERSON
    small_at = rng.choice(np.flatnonzero(subject != PERSON), 50, replace=False)
    subject[small_at] = SMALL
    app = rng.integers(1, APPS + 1, n)
    actor = rng.integers(100, WORLD, n)
    mine = subject == PERSON
    actor[mine] = np.where(
        rng.random(int(mine.sum())) < 0.5, PERSON, rng.choice(FRIENDS, int(mine.sum()))
    )
    mask = masks[rng.integers(0, len(masks), n)]
    start_at = timezone.now() - timedelta(days=365)
    micros_per = int(365 * 86_400 * 1_000_000 / n)
    epoch_start = records.micros(start_at)

    vendor = connection.vendor
    build_s: float | None = None
    if args.measure_only:
        first = CallRecord.objects.values_list("created_at", flat=True).get(index=0)
        start_at = first
    else:
        # People and apps the page names (the ledger itself has no foreign keys).
        Person.objects.bulk_create(
            [Person(pk=PERSON, email="measured@example.test", name="Measured Person")]
            + [Person(pk=SMALL, email="small@example.test", name="Small History")]
            + [Person(pk=f, email=f"friend{f}@example.test", name=f"Friend {f}") for f in FRIENDS]
        )
        Application.objects.bulk_create(
            [
                Application(
                    pk=a,
                    name=f"App {a}",
                    client_type=Application.CLIENT_PUBLIC,
                    authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                    redirect_uris="https://app.example.test/cb",
                    hash_client_secret=False,
                    status="live",
                )
                for a in range(1, APPS + 1)
            ]
        )

        call_sql = (
            'INSERT INTO ledger_callrecord ("index", created_at, app_id, actor_id, token_id,'
            " endpoint, subject_count, subjects, leaf_hash)"
            " VALUES (%s, %s, %s, %s, NULL, %s, 1, %s, %s)"
        )
        index_sql = (
            "INSERT INTO ledger_subjectdisclosure (subject_id, entry_index, app_id, mask)"
            " VALUES (%s, %s, %s, %s)"
        )
        endpoint = "/v1/me/friends"
        build_start = time.perf_counter()
        frontier: list[bytes] = []
        for lo in range(0, n, BATCH):
            hi = min(n, lo + BATCH)
            calls = []
            derived = []
            for i in range(lo, hi):
                created = records.from_micros(epoch_start + i * micros_per)
                sid, aid, act, m = int(subject[i]), int(app[i]), int(actor[i]), int(mask[i])
                blob = records.pack_subjects(
                    records.Released(np.array([sid], np.uint64), np.array([m], np.uint16))
                )
                leaf = records.record_leaf_hash(
                    index=i,
                    created_at=created,
                    app_id=aid,
                    actor_id=act,
                    token_id=None,
                    endpoint=endpoint,
                    subject_count=1,
                    subjects=blob,
                )
                frontier = merkle.frontier_append(frontier, i, leaf)
                calls.append((i, created, aid, act, endpoint, blob, leaf))
                derived.append((sid, i, aid, m))
            _bulk(connection, vendor, call_sql, calls, "calls")
            _bulk(connection, vendor, index_sql, derived, "index")
            if (lo // BATCH) % 20 == 0:
                print(
                    f"  {hi:,} of {n:,} call records in {time.perf_counter() - build_start:.0f} s"
                )
        with transaction.atomic():
            LedgerHead.objects.update_or_create(
                pk=1, defaults={"size": n, "frontier": merkle.pack_frontier(frontier)}
            )
            IndexWatermark.objects.update_or_create(pk=1, defaults={"upto": n})
        if vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        else:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        build_s = time.perf_counter() - build_start
        print(f"built {n:,} call records and index rows in {build_s:.0f} s")

    client = Client()
    client.force_login(Person.objects.get(pk=PERSON))
    small_client = Client()
    small_client.force_login(Person.objects.get(pk=SMALL))
    middle = int(np.flatnonzero(mine)[args.entries // 2])
    month_from = (start_at + timedelta(days=180)).date().isoformat()
    month_until = (start_at + timedelta(days=210)).date().isoformat()
    cases: dict[str, tuple[Client, dict[str, str]]] = {
        "baseline_small_history": (small_client, {}),
        "first_page": (client, {}),
        "deep_page": (client, {"before": str(middle)}),
        "by_app": (client, {"app": "7"}),
        "by_field": (client, {"field": "hometown"}),
        "by_friend": (client, {"friend": str(FRIENDS[3])}),
        "by_month": (client, {"since": month_from, "until": month_until}),
    }

    def request(c: Client, params: dict[str, str]) -> Callable[[], None]:
        def run() -> None:
            response = c.get("/privacy/activity/", params)
            assert response.status_code == 200, response.status_code
            assert response.content.count(b"data-index=") == 50

        return run

    figures: dict[str, object] = {
        "database": vendor,
        "records": n,
        "entries": args.entries,
        "build_seconds": None if build_s is None else round(build_s, 1),
    }
    for name, (c, params) in cases.items():
        run = request(c, params)
        run()  # warm
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1000)
        p95, median = percentile(times, 0.95), statistics.median(times)
        figures[f"{name}_p95_ms"] = round(p95, 1)
        figures[f"{name}_median_ms"] = round(median, 1)
        print(f"{name:>24}: p95 {p95:7.1f} ms, median {median:7.1f} ms")
    # The database part alone (history.history_page: the queries, no template), which
    # is what grows with the ledger; the rest of a request is the same for any history.
    from datetime import datetime
    from datetime import time as clock

    from consentry.privacy.history import HistoryFilter, history_page

    since = datetime.combine(start_at.date() + timedelta(days=180), clock.min, start_at.tzinfo)
    queries = {
        "query_first_page": (PERSON, HistoryFilter()),
        "query_baseline_small_history": (SMALL, HistoryFilter()),
        "query_by_friend": (PERSON, HistoryFilter(friend_id=FRIENDS[3])),
        "query_by_month": (PERSON, HistoryFilter(since=since, until=since + timedelta(days=30))),
    }
    for name, (who, filters) in queries.items():
        history_page(who, filters)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            history_page(who, filters)
            times.append((time.perf_counter() - t0) * 1000)
        p95, median = percentile(times, 0.95), statistics.median(times)
        figures[f"{name}_p95_ms"] = round(p95, 1)
        figures[f"{name}_median_ms"] = round(median, 1)
        print(f"{name:>28}: p95 {p95:7.1f} ms, median {median:7.1f} ms")
    base = float(figures["baseline_small_history_p95_ms"])  # type: ignore[arg-type,unused-ignore]
    for name in cases:
        if name != "baseline_small_history":
            figures[f"{name}_ratio"] = round(float(figures[f"{name}_p95_ms"]) / base, 2)  # type: ignore[arg-type]
    print(json.dumps(figures))


def _reuse_scratch() -> str:
    """Point Django at the scratch database a previous run built, without rebuilding."""
    import os
    from urllib.parse import urlsplit, urlunsplit

    url = os.environ.get("CONSENTRY_DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        os.environ["CONSENTRY_DATABASE_URL"] = urlunsplit(
            parts._replace(path="/bench_history_page")
        )
        where = "postgresql (reused) bench_history_page"
    else:
        var = Path(os.environ.get("CONSENTRY_VAR_DIR", "var")).resolve()
        path = var / "bench" / "bench_history_page.sqlite3"
        os.environ["CONSENTRY_DATABASE_URL"] = f"sqlite:///{path}"
        where = f"sqlite (reused) {path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
    import django

    django.setup()
    return where


def _bulk(connection: Any, vendor: str, sql: str, rows: list[tuple[Any, ...]], kind: str) -> None:
    """executemany in one transaction on SQLite; COPY on PostgreSQL."""
    from django.db import transaction

    with transaction.atomic(), connection.cursor() as cursor:
        if vendor != "postgresql":
            adapt = connection.ops.adapt_datetimefield_value
            if kind == "calls":
                rows = [(r[0], adapt(r[1]), *r[2:]) for r in rows]
            cursor.executemany(sql, rows)
            return
        raw = cursor.cursor
        if kind == "calls":
            columns = (
                '"index", created_at, app_id, actor_id, endpoint, subject_count, subjects, '
                "leaf_hash"
            )
            with raw.copy(f"COPY ledger_callrecord ({columns}) FROM STDIN") as copy:
                for i, created, aid, act, ep, blob, leaf in rows:
                    copy.write_row((i, created, aid, act, ep, 1, blob, leaf))
        else:
            columns = "subject_id, entry_index, app_id, mask"
            with raw.copy(f"COPY ledger_subjectdisclosure ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)


if __name__ == "__main__":
    main()
