"""bench/release_scale.py at a tiny size, on the database this test run uses, so that the
simulation docs/scaling.md quotes keeps running as the read path changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_bench(tmp_path: Path) -> tuple[str, dict]:
    url = os.environ.get("CONSENTRY_DATABASE_URL", "")
    vendor = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env["CONSENTRY_VAR_DIR"] = str(tmp_path)
    if vendor == "postgresql":
        env["CONSENTRY_BENCH_POSTGRES_URL"] = url  # its scratch database goes next to ours
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "release_scale.py"), "--people", "60"),
            *("--steps", "1,2,4", "--calls", "4", "--viewers", "3", "--databases", vendor),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return vendor, json.loads(done.stdout.strip().splitlines()[-1])


def test_release_scale_grows_the_world_measures_every_read_and_fits_the_growth(tmp_path):
    vendor, summary = _run_bench(tmp_path)
    assert summary["bench"] == "release_scale"
    assert list(summary["databases"]) == [vendor]
    result = summary["databases"][vendor]
    steps = result["steps"]
    assert [s["people"] for s in steps] == [60, 120, 240]
    rows = [s["friendship_rows"] for s in steps]
    assert rows[0] > 0
    assert rows == sorted(set(rows)), "friendships grow with every step"
    assert all(s["consents"] > 0 and s["commit_ms"] > 0 for s in steps)
    figures = {
        "me",
        "friends_25_first",
        "friends_25_deep",
        "friends_100_first",
        "friends_100_deep",
        "person_friend",
        "person_non_friend",
        "friends_sql_100_first",
        "friends_sql_100_deep",
    }
    for step in steps:
        assert set(step["ms"]) == figures
        for median, p95, baseline, ratio in step["ms"].values():
            assert 0 < median <= p95
            assert baseline > 0
            # The ratio comes from the unrounded medians.
            assert abs(ratio - median / baseline) <= 0.03 * median / baseline + 0.01
    fitted = result["fits"]
    assert set(fitted) - figures == (
        {"buffers_100_first", "buffers_100_deep"} if vendor == "postgresql" else set()
    )
    assert figures <= set(fitted)
    assert {f["fits"] for f in fitted.values()} <= {"log", "linear"}
    assert all(fitted[name]["ratio"]["growth"] > 0 for name in figures)
    if vendor == "sqlite":
        # SQLite walks the indexes at any size: the intended plan shape.
        assert all(s["plan_first"]["range_scan_and_probes"] for s in steps)
    else:
        assert all(s["levels"]["friendship_unique_pair"] >= 1 for s in steps)
        assert all(s["plan_first"]["shared_hit_blocks"] > 0 for s in steps)
    assert summary["largest_people"] == 240
    assert f"ratio_{vendor}_friends_100_first" in summary
