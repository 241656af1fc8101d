"""Benchmark: the Graph API read path with harvest detection on versus off, in the same
run. Two reads through the real view (Django's test client): GET /v1/me/friends with
5,000 friends (bench/read_friends.py's world) and GET /v1/me (the smallest call, where a
per-call cost shows most). Runs alternate on/off so machine noise hits both alike.

    .venv/bin/python bench/detector_overhead.py [--runs 30]

Creates its own scratch database (SQLite, or a scratch PostgreSQL database when
CONSENTRY_DATABASE_URL points at PostgreSQL). Prints the figures, then one line of JSON.
Target: detection adds under 10% (ratio on/off < 1.10) on both reads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.10


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench.read_friends import scratch_database

    url, cleanup = scratch_database()
    os.environ["CONSENTRY_DATABASE_URL"] = url
    os.environ["CONSENTRY_DEBUG"] = "0"
    os.environ.setdefault("CONSENTRY_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
    import django

    django.setup()
    try:
        return run(args.runs)
    finally:
        cleanup()


def run(runs: int) -> dict[str, Any]:
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from bench.read_friends import FRIENDS, PATH, build_world
    from consentry.detection.engine import detector

    call_command("migrate", verbosity=0)
    _person_id, app_id, raw = build_world()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {raw}")
    d = detector()

    def timed(path: str) -> float:
        started = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.content[:300]
        return elapsed

    results: dict[str, Any] = {"bench": "detector_overhead", "database": connection.vendor}
    # The small call is cheap and noisier: it gets four times the runs.
    for name, path, n in (("friends", PATH, runs), ("me", "/v1/me?fields=name,birthday", runs * 4)):
        for enabled in (True, False, True, False):  # warm both
            d.enabled = enabled
            timed(path)
        on: list[float] = []
        off: list[float] = []
        for i in range(n):
            for enabled in (True, False) if i % 2 == 0 else (False, True):
                d.enabled = enabled
                (on if enabled else off).append(timed(path))
        d.enabled = True
        on_ms, off_ms = statistics.median(on) * 1000, statistics.median(off) * 1000
        ratio = on_ms / off_ms
        print(
            f"{name}: detection on {on_ms:.2f} ms, off {off_ms:.2f} ms (median of {n}), "
            f"ratio {ratio:.3f}"
        )
        results[f"{name}_on_ms"] = round(on_ms, 3)
        results[f"{name}_off_ms"] = round(off_ms, 3)
        results[f"{name}_ratio"] = round(ratio, 4)
    figures = d.figures(app_id)
    assert figures.subjects_reached == FRIENDS + 1, figures  # it really was counting
    results["target_ratio"] = TARGET
    results["ok"] = results["friends_ratio"] < TARGET and results["me_ratio"] < TARGET
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
