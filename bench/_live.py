"""Shared parts of the loopback HTTP benchmarks (bench/peer_oidc.py, bench/read_path.py):
scratch databases, a small world with tokens, `consentry serve` subprocesses and Debian's
`wrk` load generator with a Lua script that reports its figures as JSON.

Not a benchmark itself (the leading underscore keeps it out of `consentry bench`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
WRK_THREADS = 2


# --- scratch databases -------------------------------------------------------------------


def postgres_base_url() -> str | None:
    """The PostgreSQL server to create scratch databases on, or None when unreachable."""
    url = os.environ.get("CONSENTRY_BENCH_POSTGRES_URL") or os.environ.get(
        "CONSENTRY_DATABASE_URL", ""
    )
    if not url.startswith(("postgres://", "postgresql://")):
        url = DEFAULT_POSTGRES
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error:
        return None
    return url


def scratch_database(vendor: str, name: str) -> tuple[str, Callable[[], None]]:
    """A fresh database URL (SQLite file under var/bench, or a scratch PostgreSQL database
    next to the configured one) and a function that removes it."""
    if vendor == "postgresql":
        import psycopg

        base = postgres_base_url()
        if base is None:
            raise SystemExit("PostgreSQL is not reachable (CONSENTRY_BENCH_POSTGRES_URL)")
        db = f"bench_{name}_{secrets.token_hex(3)}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        prefix, _, _ = base.rpartition("/")

        def drop() -> None:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

        return f"{prefix}/{db}", drop
    folder = ROOT / "var" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    handle, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".sqlite3", dir=folder)
    os.close(handle)

    def remove() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)

    return f"sqlite:///{path}", remove


def django_env(database_url: str) -> dict[str, str]:
    """The environment a Consentry process of the bench runs with (production settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    var = ROOT / "var" / "bench"
    var.mkdir(parents=True, exist_ok=True)
    env.update(
        CONSENTRY_DATABASE_URL=database_url,
        CONSENTRY_DEBUG="0",
        CONSENTRY_VAR_DIR=str(var),
        DJANGO_SETTINGS_MODULE="consentry.settings",
        PYTHONPATH=str(ROOT),
    )
    for key in ("CONSENTRY_REDIS_URL", "CONSENTRY_REDIS_PREFIX"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def run_in_django(database_url: str, code: str, *args: str) -> Any:
    """Run `code` (a Python snippet that ends by printing one JSON line) in a fresh
    process set up for `database_url`: migrated, then the world built. Returns the JSON."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=django_env(database_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"world setup failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


WORLD = r"""
import json, secrets, sys, uuid
from datetime import date, timedelta
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import connection
from django.utils import timezone
from consentry.grants.models import Consent, ConsentPermission
from consentry.grants.permissions import permissions_to_mask
from consentry.oauth.actions import do_create_application
from consentry.oauth.models import AccessToken, Application, AppStatus, RefreshToken
from consentry.people.models import Friendship, Person

friends, refresh_tokens = int(sys.argv[1]), int(sys.argv[2])
people = Person.objects.bulk_create(
    [Person(email=f"p{i}@bench.test", name=f"Person {i}", picture=f"https://pics.example/{i}.png",
            birthday=date(1960, 1, 1) + timedelta(days=i * 7), password="!")
     for i in range(friends + 1)], batch_size=1000)
me, others = people[0], people[1:]
Friendship.objects.bulk_create(
    [Friendship(person_id=me.pk, friend_id=f.pk) for f in others]
    + [Friendship(person_id=f.pk, friend_id=me.pk) for f in others], batch_size=2000)
# Registered as `consentry apps create` does: the secret is stored hashed.
app, secret = do_create_application(
    name="Bench calendar", redirect_uris=["https://calendar.example/callback"],
    approved_permissions=["user_birthday", "user_friends"], live=True)
app.limits = {"requests_per_minute": 10**9, "token_requests_per_minute": 10**9,
              "subjects_per_day": 10**12}
app.save(update_fields=["limits"])
now = timezone.now()
scopes = ["openid", "profile", "user_birthday"]
consents = Consent.objects.bulk_create(
    [Consent(person_id=p.pk, application=app, expires_at=now + timedelta(days=90),
             permission_mask=permissions_to_mask(
                 [*scopes, "user_friends"] if p.pk == me.pk else scopes))
     for p in people], batch_size=1000)
ConsentPermission.objects.bulk_create(
    [ConsentPermission(consent=c, permission=s) for c in consents for s in scopes]
    + [ConsentPermission(consent=consents[0], permission="user_friends")], batch_size=2000)
scope = " ".join([*scopes, "user_friends"])
raw = secrets.token_urlsafe(32)
AccessToken.objects.create(user_id=me.pk, application=app, consent=consents[0], token=raw,
                           scope=scope, expires=now + timedelta(hours=6))
refresh = []
if refresh_tokens:
    ats = AccessToken.objects.bulk_create(
        [AccessToken(user_id=me.pk, application=app, consent=consents[0],
                     token=secrets.token_urlsafe(32), scope=scope, expires=now + timedelta(hours=6))
         for _ in range(refresh_tokens)], batch_size=2000)
    refresh = [secrets.token_urlsafe(32) for _ in range(refresh_tokens)]
    RefreshToken.objects.bulk_create(
        [RefreshToken(user_id=me.pk, application=app, consent=consents[0], token=r, access_token=at,
                      token_family=uuid.uuid4())
         for r, at in zip(refresh, ats)], batch_size=2000)
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
print(json.dumps({"client_id": app.client_id, "client_secret": secret, "access_token": raw,
                  "refresh_tokens": refresh, "vendor": connection.vendor}))
"""


def build_world(database_url: str, friends: int, refresh_tokens: int = 0) -> dict[str, Any]:
    """One person with `friends` friends, all consented to one live app (name, birthday),
    an access token of that person, and `refresh_tokens` refresh tokens of the app."""
    return run_in_django(database_url, WORLD, str(friends), str(refresh_tokens))


# --- servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_ready(server: Server, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited:\n{server.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(server.base + path, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{server.name} did not answer {path} within {timeout:.0f}s")


def start_consentry(name: str, database_url: str, extra: Sequence[str] = ()) -> Server:
    """`consentry serve` on a free loopback port (its defaults unless `extra` says)."""
    port = free_port()
    env = django_env(database_url)
    env["CONSENTRY_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
    with log.open("wb") as fh:
        process = subprocess.Popen(
            [sys.executable, "-m", "consentry", "serve", "--no-migrate", "--host", "127.0.0.1",
             "--port", str(port), *extra],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=fh,
        )  # fmt: skip
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    wait_ready(server, "/healthz")
    return server


# --- wrk ---------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """Debian's wrk, installed with apt-get when missing (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's wrk ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("this benchmark needs wrk: sudo apt-get install wrk")
    return found


LUA_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%d,\"duration_us\":%d,\"status_errors\":%d,\"socket_errors\":%d,"
    .. "\"p50_us\":%d,\"p99_us\":%d}\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_escape(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


@dataclass
class Request:
    """What wrk sends: a fixed request, or (with `pool`) a POST whose body ends with the
    next value of a pool of single-use values (refresh tokens), each wrk thread taking a
    disjoint share."""

    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    pool: list[str] | None = None

    def lua(self, folder: Path) -> Path:
        lines = [f"wrk.method = {lua_escape(self.method)}"]
        for key, value in self.headers.items():
            lines.append(f"wrk.headers[{lua_escape(key)}] = {lua_escape(value)}")
        if self.pool is None:
            if self.body:
                lines.append(f"wrk.body = {lua_escape(self.body)}")
        else:
            pool_file = folder / f"pool-{uuid.uuid4().hex}.txt"
            pool_file.write_text("\n".join(self.pool) + "\n")
            lines += [
                "local count = 0",
                "local nthreads = 0",
                "function setup(thread) thread:set('tid', nthreads); nthreads = nthreads + 1 end",
                "local values = {}",
                "function init(args)",
                "  local i = 0",
                f"  for line in io.lines({lua_escape(str(pool_file))}) do",
                f"    if i % {WRK_THREADS} == tid then values[#values + 1] = line end",
                "    i = i + 1",
                "  end",
                "end",
                "function request()",
                "  count = count + 1",
                "  local value = values[count] or values[1]",
                f"  return wrk.format(nil, {lua_escape(self.path)}, nil, "
                f"{lua_escape(self.body)} .. value)",
                "end",
            ]
        script = folder / f"req-{uuid.uuid4().hex}.lua"
        script.write_text("\n".join(lines) + "\n" + LUA_DONE)
        return script


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def run_wrk(base: str, request: Request, seconds: float, connections: int) -> Result:
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        script = request.lua(Path(tmp))
        out = subprocess.run(
            [wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
             "--timeout", "10s", "-s", str(script), base + request.path],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("WRKJSON "))
    return Result(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["status_errors"] + data["socket_errors"],
        requests=data["requests"],
    )


def median_result(results: Iterable[Result]) -> Result:
    items = list(results)
    return Result(
        rps=statistics.median(r.rps for r in items),
        p50_ms=statistics.median(r.p50_ms for r in items),
        p99_ms=statistics.median(r.p99_ms for r in items),
        errors=sum(r.errors for r in items),
        requests=sum(r.requests for r in items),
    )


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def basic(client_id: str, secret: str) -> str:
    import base64
    from urllib.parse import quote_plus

    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()
