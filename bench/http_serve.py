"""Benchmark: HTTP throughput of `consentry serve` with several worker processes, measured
with a real load generator (wrk) on loopback: GET /v1/me?fields=name,birthday with a
bearer token (token lookup, grant, rate limits, release rule, ledger write in the same
transaction) against the baseline GET /healthz, a bare JSON answer from the same server
through the same middleware.

    .venv/bin/python bench/http_serve.py [--workers 2] [--seconds 8] [--connections 16]

Needs wrk (Debian's `wrk` package; installed with apt-get when missing and running as
root). Uses a scratch SQLite database under var/bench. Prints the figures, then one line
of JSON. Target: ratio >= 0.25 (an audited, ledgered read costs at most 4 bare answers).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.25


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's wrk")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
        found = shutil.which("wrk")
    if not found:
        sys.exit("this benchmark needs wrk: sudo apt-get install wrk")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk(binary: str, url: str, seconds: int, connections: int, header: str = "") -> float:
    argv = [binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if header:
        argv[1:1] = ["-H", header]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} failed responses\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    return float(match.group(1))


def setup(env: dict[str, str]) -> str:
    """Migrate the scratch database and make a person, an app and a token; returns the
    bearer token. Runs in a child so that this process never loads Django."""
    code = """
import secrets
from datetime import timedelta
import django
django.setup()
from django.core.management import call_command
from django.utils import timezone
call_command("migrate", interactive=False, verbosity=0)
from consentry.grants.actions import do_grant_consent
from consentry.oauth.models import AccessToken, Application, AppStatus
from consentry.people.models import Person
person = Person.objects.create_user(email="bench@example.test", name="Bench", password=None)
app = Application.objects.create(
    name="bench", client_type=Application.CLIENT_PUBLIC,
    authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
    redirect_uris="https://bench.example/callback", client_secret="", hash_client_secret=False,
    status=AppStatus.LIVE, approved_permissions=["user_birthday"],
    limits={"requests_per_minute": 10**9, "token_requests_per_minute": 10**9},
)
scopes = {"openid", "profile", "user_birthday"}
consent = do_grant_consent(person, app, scopes)
raw = secrets.token_urlsafe(32)
AccessToken.objects.create(user=person, application=app, consent=consent, token=raw,
    scope=" ".join(sorted(scopes)), expires=timezone.now() + timedelta(hours=2))
print(raw)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("consentry serve exited")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("consentry serve did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    binary = ensure_wrk()

    folder = ROOT / "var" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    var = Path(tempfile.mkdtemp(prefix="http-", dir=folder))
    env = dict(os.environ)
    env.pop("CONSENTRY_REDIS_URL", None)  # in-process rate-limit counters: no shared state
    env.update(
        CONSENTRY_VAR_DIR=str(var),
        CONSENTRY_DATABASE_URL=f"sqlite:///{var / 'bench.sqlite3'}",
        DJANGO_SETTINGS_MODULE="consentry.settings",
    )
    token = setup(env)
    port = free_port()
    argv = [sys.executable, "-m", "consentry", "serve", "--port", str(port), "--no-migrate",
            "--workers", str(args.workers)]  # fmt: skip
    help_text = subprocess.run(
        [sys.executable, "-m", "consentry", "serve", "--help"],
        env=env, capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    if "--no-worker" in help_text:
        argv.append("--no-worker")  # no background task worker competing for the CPU
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz", server)
        wrk(binary, f"{base}/healthz", 2, args.connections)  # warm up every worker
        bare = wrk(binary, f"{base}/healthz", args.seconds, args.connections)
        api = wrk(
            binary,
            f"{base}/v1/me?fields=name,birthday",
            args.seconds,
            args.connections,
            header=f"Authorization: Bearer {token}",
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(var, ignore_errors=True)
    figures = {
        "bench": "http_serve",
        "workers": args.workers,
        "connections": args.connections,
        "seconds": args.seconds,
        "bare_json_requests_per_s": round(bare, 1),
        "api_me_requests_per_s": round(api, 1),
        "ratio_api_to_bare": round(api / bare, 3),
        "target_ratio": TARGET,
    }
    print(f"consentry serve, {args.workers} workers, wrk {args.connections} connections")
    print(f"bare JSON /healthz : {bare:>10,.0f} requests/s")
    print(f"/v1/me (ledgered)  : {api:>10,.0f} requests/s")
    print(f"ratio = {figures['ratio_api_to_bare']} (target >= {TARGET})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
