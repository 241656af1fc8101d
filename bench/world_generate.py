"""Benchmark: generate and load a synthetic world, against a same-run baseline.

    .venv/bin/python bench/world_generate.py [--people 100000] [--seed 2014]

Uses a fresh SQLite database under var/bench-world/ unless CONSENTRY_DATABASE_URL is
set. Reports seconds to generate (numpy, no database) and to load (one transaction,
friend-count triggers and cap CHECK active), rows per second, and as the baseline a plain
`executemany` of the same number of friendship rows into a scratch table with no
trigger and no index, in the same process. Prints the figures, then one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from itertools import repeat
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2014)
    args = parser.parse_args()

    var = ROOT / "var" / "bench-world"
    var.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CONSENTRY_DEBUG", "1")
    os.environ.setdefault("CONSENTRY_VAR_DIR", str(var))
    if "CONSENTRY_DATABASE_URL" not in os.environ:
        db = var / "bench.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        os.environ["CONSENTRY_DATABASE_URL"] = f"sqlite:///{db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection, transaction

    from consentry.world.generator import WorldParams, generate_world
    from consentry.world.loader import do_load_world

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    world = generate_world(WorldParams(args.people, args.seed))
    generate_s = time.perf_counter() - started
    stats = do_load_world(world, make_password("consentry-demo"), replace=True)
    friendship_rows = 2 * stats.friendships

    # Baseline: the same number of rows, same batching, no trigger, no index.
    connection.ensure_connection()
    raw = connection.connection.cursor()
    is_sqlite = connection.vendor == "sqlite"
    mark = "?" if is_sqlite else "%s"
    stamp = "2014-06-01 00:00:00"
    with transaction.atomic():
        raw.execute("DROP TABLE IF EXISTS bench_scratch")
        raw.execute("CREATE TABLE bench_scratch (a bigint, b bigint, created_at text)")
        mark_s = time.perf_counter()
        batch = 200_000
        for start in range(0, friendship_rows, batch):
            n = min(batch, friendship_rows - start)
            values = list(range(start, start + n))
            raw.executemany(
                f"INSERT INTO bench_scratch (a, b, created_at) VALUES ({mark}, {mark}, {mark})",
                zip(values, values, repeat(stamp, n), strict=True),
            )
        baseline_s = time.perf_counter() - mark_s
        raw.execute("DROP TABLE bench_scratch")

    friendships_s = stats.phase_seconds["friendships"]
    figures = {
        "database": connection.vendor,
        "people": stats.people,
        "friendships": stats.friendships,
        "friendship_rows": friendship_rows,
        "posts": stats.posts,
        "generate_s": round(generate_s, 2),
        "load_s": round(stats.seconds, 2),
        "load_people_s": round(stats.phase_seconds["people"], 2),
        "load_friendships_s": round(friendships_s, 2),
        "load_posts_s": round(stats.phase_seconds["posts"], 2),
        "load_rows_per_s": round(stats.rows / stats.seconds),
        "friendship_rows_per_s": round(friendship_rows / friendships_s),
        "baseline_s": round(baseline_s, 2),
        "baseline_rows_per_s": round(friendship_rows / baseline_s),
        "friendships_vs_baseline": round(friendships_s / baseline_s, 2),
    }
    print(f"{'generate (numpy)':<28}{generate_s:8.1f} s")
    print(
        f"{'load (one transaction)':<28}{stats.seconds:8.1f} s  "
        f"{figures['load_rows_per_s']:,} rows/s"
    )
    for phase, seconds in stats.phase_seconds.items():
        print(f"{'  ' + phase:<28}{seconds:8.1f} s")
    print(
        f"{'baseline executemany':<28}{baseline_s:8.1f} s  "
        f"{figures['baseline_rows_per_s']:,} rows/s "
        "(same rows, no trigger, no index)"
    )
    print(f"friendship load / baseline: {figures['friendships_vs_baseline']}x")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
