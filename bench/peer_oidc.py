"""Benchmark: Consentry's OAuth / OpenID Connect endpoints side by side with an OpenID
Certified peer, panva's `oidc-provider` (npm, one Node process, in-memory store).

    .venv/bin/python bench/peer_oidc.py [--seconds 5] [--rounds 3] [--db sqlite,postgresql]

Installs `oidc-provider` from npm into a temporary folder (or uses --peer-dir), starts it
(bench/peer_oidc.mjs) and Consentry (`consentry serve` with its defaults on a scratch
SQLite database, and `--workers 2` on a scratch PostgreSQL database) on loopback, and
measures with Debian's `wrk` (2 threads, 8 connections; installed when missing) in
alternating rounds:

- token introspection (RFC 7662, client_secret_basic), a valid access token;
- userinfo (OpenID Connect Core 5.3) with a bearer token;
- token refresh (refresh_token grant with rotation, client_secret_basic; each request
  spends a fresh refresh token from a pool minted beforehand);
- the discovery document and the JWKS.

Consentry's app is registered the way `consentry apps create` registers one (client
secret stored hashed). Prints a table of median requests per second, p50 and each
Consentry server's ratio to the peer, then one line of JSON.
Target (issue "Performance"): at least 0.5x the peer on every endpoint.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _live  # noqa: E402

TARGET = 0.5
PEER_PACKAGE = "oidc-provider@9"
CONSENTRY_POOL_PER_ROUND = 6000
PEER_POOL_PER_ROUND = 25000


def install_peer(folder: Path) -> None:
    if (folder / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("this benchmark needs Node.js and npm (apt-get install nodejs npm)")
    print(f"installing {PEER_PACKAGE} from npm into {folder} ...", flush=True)
    (folder / "package.json").write_text('{"private": true, "type": "module"}\n')
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", PEER_PACKAGE],
        cwd=folder,
        check=True,
    )


def start_peer(folder: Path, secret: str, pool: int) -> tuple[_live.Server, dict[str, Any]]:
    shutil.copy(HERE / "peer_oidc.mjs", folder / "peer_oidc.mjs")
    port = _live.free_port()
    log = Path(tempfile.mkstemp(prefix="peer-", suffix=".log")[1])
    with log.open("wb") as fh:
        process = subprocess.Popen(
            ["node", "peer_oidc.mjs", str(port), secret, str(pool)],
            cwd=folder, stdout=subprocess.PIPE, stderr=fh,
        )  # fmt: skip
    server = _live.Server("oidc-provider", f"http://127.0.0.1:{port}", process, log)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait()
        raise SystemExit(f"oidc-provider did not start:\n{log.read_text()[-3000:]}")
    process.stdout.close()
    _live.wait_ready(server, "/.well-known/openid-configuration")
    return server, json.loads(line)


def requests_for(kind: str, world: dict[str, Any], round_no: int, per_round: int) -> dict:
    """The five measured requests for one server (`kind`: consentry or peer)."""
    basic = {
        "Authorization": _live.basic(world["client_id"], world["client_secret"]),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    bearer = {"Authorization": f"Bearer {world['access_token']}"}
    consentry = kind == "consentry"
    pool = world["refresh_tokens"][round_no * per_round : (round_no + 1) * per_round]
    return {
        "introspection": _live.Request(
            "/oauth/introspect/" if consentry else "/token/introspection",
            method="POST",
            headers=basic,
            body=f"token={world['access_token']}",
        ),
        "userinfo": _live.Request("/oauth/userinfo/" if consentry else "/me", headers=bearer),
        "token refresh": _live.Request(
            "/oauth/token/" if consentry else "/token",
            method="POST",
            headers=basic,
            body="grant_type=refresh_token&refresh_token=",
            pool=pool,
        ),
        "discovery": _live.Request("/.well-known/openid-configuration"),
        "jwks": _live.Request("/oauth/jwks/" if consentry else "/jwks"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--peer-dir", help="a folder where oidc-provider is (or gets) installed")
    parser.add_argument("--only", help="comma-separated endpoints to measure (default: all)")
    args = parser.parse_args(argv)
    vendors = [v.strip() for v in args.db.split(",") if v.strip()]
    if "postgresql" in vendors and _live.postgres_base_url() is None:
        print("PostgreSQL is not reachable: measuring Consentry on SQLite only")
        vendors.remove("postgresql")
    _live.ensure_wrk()

    temp = None if args.peer_dir else tempfile.mkdtemp(prefix="peer-oidc-")
    peer_dir = Path(args.peer_dir or temp or ".")
    peer_dir.mkdir(parents=True, exist_ok=True)
    servers: dict[str, _live.Server] = {}
    worlds: dict[str, dict[str, Any]] = {}
    cleanups = []
    try:
        install_peer(peer_dir)
        for vendor in vendors:
            url, cleanup = _live.scratch_database(vendor, "peer")
            cleanups.append(cleanup)
            worlds[vendor] = _live.build_world(url, 10, CONSENTRY_POOL_PER_ROUND * args.rounds)
            extra = ["--workers", "2"] if vendor == "postgresql" else []
            servers[vendor] = _live.start_consentry(f"consentry-{vendor}", url, extra)
        peer_secret = secrets.token_urlsafe(96)  # 128 characters, like Consentry's
        servers["peer"], worlds["peer"] = start_peer(
            peer_dir, peer_secret, PEER_POOL_PER_ROUND * args.rounds
        )
        worlds["peer"]["client_secret"] = peer_secret
        return measure(servers, worlds, args)
    finally:
        for server in servers.values():
            server.stop()
        for cleanup in cleanups:
            cleanup()
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


def measure(
    servers: dict[str, _live.Server], worlds: dict[str, dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    names = list(requests_for("peer", worlds["peer"], 0, 1))
    if args.only:
        names = [n for n in names if n in {x.strip() for x in args.only.split(",")}]
    targets = list(servers)
    loads = [_live.load_average()]
    samples: dict[tuple[str, str], list[_live.Result]] = {}
    for target in targets:  # warm up every server on the cheap endpoints
        for name in ("discovery", "jwks", "userinfo"):
            request = requests_for(_kind(target), worlds[target], 0, 1)[name]
            _live.run_wrk(servers[target].base, request, 1, args.connections)
    for round_no in range(args.rounds):
        order = targets if round_no % 2 == 0 else targets[::-1]
        for name in names:
            for target in order:
                per_round = PEER_POOL_PER_ROUND if target == "peer" else CONSENTRY_POOL_PER_ROUND
                request = requests_for(_kind(target), worlds[target], round_no, per_round)[name]
                base = servers[target].base
                result = _live.run_wrk(base, request, args.seconds, args.connections)
                samples.setdefault((target, name), []).append(result)
        loads.append(_live.load_average())

    consentry = [t for t in targets if t != "peer"]
    header = f"{'endpoint':<14} {'peer req/s':>10} {'p50 ms':>7}"
    for target in consentry:
        header += f" | {target + ' req/s':>17} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6} {'err':>5}"
    print("\n" + header)
    figures: dict[str, Any] = {}
    for name in names:
        peer = _live.median_result(samples[("peer", name)])
        row = f"{name:<14} {peer.rps:>10.0f} {peer.p50_ms:>7.2f}"
        figures[name] = {"peer": {"rps": round(peer.rps, 1), "p50_ms": round(peer.p50_ms, 2),
                                  "errors": peer.errors}}  # fmt: skip
        for target in consentry:
            r = _live.median_result(samples[(target, name)])
            ratio = r.rps / peer.rps if peer.rps else 0.0
            row += (
                f" | {r.rps:>17.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} {ratio:>6.3f} {r.errors:>5}"
            )
            figures[name][target] = {
                "rps": round(r.rps, 1),
                "p50_ms": round(r.p50_ms, 2),
                "p99_ms": round(r.p99_ms, 2),
                "ratio_to_peer": round(ratio, 3),
                "errors": r.errors,
                "within_target": ratio >= TARGET,
            }
        print(row)
    print(f"target: ratio >= {TARGET}; load average before and after each round: {loads}")
    result = {
        "bench": "peer_oidc",
        "peer": PEER_PACKAGE,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": args.connections,
        "load_average": loads,
        "target": TARGET,
        "figures": figures,
    }
    print(json.dumps(result))
    return result


def _kind(target: str) -> str:
    return "peer" if target == "peer" else "consentry"


if __name__ == "__main__":
    main()
