"""Benchmark: the Graph API read path over HTTP, against /healthz in the same server.

    .venv/bin/python bench/read_path.py [--seconds 5] [--rounds 3] [--db sqlite,postgresql]

For each database it builds a scratch world (one person with 100 friends, all consented
to one live app) and starts `consentry serve` with its defaults (SQLite: one process with
threads; PostgreSQL: `--workers 2`). Debian's `wrk` (2 threads, 8 connections) then
measures `GET /v1/me`, `GET /v1/me/friends?limit=100` and `GET /healthz` in alternating
rounds; the table gives median requests per second, p50 and p99, and each endpoint's
ratio to /healthz in the same server. Every Graph call goes the whole way: token, limits,
grant, release rule, ledger entry. Ends with one line of JSON.

Targets (issue "Performance"): /v1/me >= 0.6 x /healthz, /v1/me/friends >= 0.4 x
/healthz, p99 <= 5 x p50.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _live

TARGETS = {"me": 0.6, "friends": 0.4}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--friends", type=int, default=100)
    args = parser.parse_args(argv)
    vendors = [v.strip() for v in args.db.split(",") if v.strip()]
    if "postgresql" in vendors and _live.postgres_base_url() is None:
        print("PostgreSQL is not reachable: measuring SQLite only")
        vendors.remove("postgresql")
    _live.ensure_wrk()

    servers: dict[str, _live.Server] = {}
    cleanups = []
    tokens: dict[str, str] = {}
    try:
        for vendor in vendors:
            url, cleanup = _live.scratch_database(vendor, "readpath")
            cleanups.append(cleanup)
            world = _live.build_world(url, args.friends)
            tokens[vendor] = world["access_token"]
            extra = ["--workers", "2"] if vendor == "postgresql" else []
            servers[vendor] = _live.start_consentry(f"consentry-{vendor}", url, extra)
        return measure(servers, tokens, args)
    finally:
        for server in servers.values():
            server.stop()
        for cleanup in cleanups:
            cleanup()


def measure(
    servers: dict[str, _live.Server], tokens: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    paths = {
        "me": "/v1/me?fields=id,name,birthday",
        "friends": f"/v1/me/friends?fields=name,birthday&limit={args.friends}",
        "healthz": "/healthz",
    }
    loads = [_live.load_average()]
    samples: dict[tuple[str, str], list[_live.Result]] = {}
    for vendor, server in servers.items():  # warm up: imports, connections, caches
        for path in paths.values():
            auth = {"Authorization": f"Bearer {tokens[vendor]}"}
            _live.run_wrk(server.base, _live.Request(path, headers=auth), 1, args.connections)
    for round_no in range(args.rounds):
        order = list(paths.items())
        if round_no % 2:
            order.reverse()  # alternate, so drift on the shared machine hits all alike
        for vendor, server in servers.items():
            for name, path in order:
                request = _live.Request(path, headers={"Authorization": f"Bearer {tokens[vendor]}"})
                result = _live.run_wrk(server.base, request, args.seconds, args.connections)
                samples.setdefault((vendor, name), []).append(result)
        loads.append(_live.load_average())

    figures: dict[str, Any] = {}
    print(f"\n{'database':<11} {'endpoint':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'ratio':>6} {'target':>7} {'errors':>7}")  # fmt: skip
    for vendor in servers:
        base = _live.median_result(samples[(vendor, "healthz")])
        for name in paths:
            r = _live.median_result(samples[(vendor, name)])
            ratio = r.rps / base.rps if base.rps else 0.0
            target = TARGETS.get(name)
            print(
                f"{vendor:<11} {name:<10} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
                f"{ratio:>6.2f} {('>=' + str(target)) if target else '':>7} {r.errors:>7}"
            )
            figures[f"{vendor}_{name}"] = {
                "rps": round(r.rps, 1),
                "p50_ms": round(r.p50_ms, 2),
                "p99_ms": round(r.p99_ms, 2),
                "ratio_to_healthz": round(ratio, 3),
                "p99_over_p50": round(r.p99_ms / r.p50_ms, 2) if r.p50_ms else None,
                "errors": r.errors,
                "within_target": None if target is None else ratio >= target,
            }
    print(f"load average (1/5/15 min) before and after each round: {loads}")
    result = {
        "bench": "read_path",
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": args.connections,
        "friends": args.friends,
        "load_average": loads,
        "figures": figures,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
