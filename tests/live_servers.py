"""Real server processes for multi-process tests: a scratch database of their own (a
fresh PostgreSQL database beside the test database, or an SQLite file), a world set up
by a separate process, and `consentry serve` processes started in their own process
group so that a test can kill -9 all of them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("CONSENTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def scratch_database(tmp_path: Path) -> Iterator[str]:
    """A database URL nobody else uses, dropped afterwards."""
    url = os.environ.get("CONSENTRY_DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path / 'live.sqlite3'}"
        return
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_live_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def base_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env |= {
        "CONSENTRY_DEBUG": "1",
        "CONSENTRY_VAR_DIR": str(tmp_path / "var"),
        "CONSENTRY_DATABASE_URL": database_url,
        "PYTHONPATH": str(REPO),
    }
    return env | extra


def redis_env(prefix: str) -> dict[str, str]:
    return {"CONSENTRY_REDIS_URL": REDIS_URL, "CONSENTRY_CACHE_PREFIX": prefix}


def run_python(env: dict[str, str], code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


WORLD = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from consentry.people.models import Person
from consentry.oauth.models import AccessToken
from tests.graph_fixtures import direct_app, direct_consent, direct_token
app = direct_app()
out = {"client_id": app.client_id, "tokens": []}
for i in range(%(n)d):
    p = Person.objects.create(email=f"live{i}@example.test", name=f"Live {i}", password="!")
    raw = direct_token(direct_consent(p.pk, app, ["openid", "profile"]), ["openid", "profile"])
    out["tokens"].append({"raw": raw, "id": AccessToken.objects.get(user=p).pk})
print(json.dumps(out))
"""


def setup_world(env: dict[str, str], people: int) -> dict:
    return json.loads(run_python(env, WORLD % {"n": people}).strip().splitlines()[-1])


class Server:
    def __init__(self, env: dict[str, str], workers: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "consentry",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--threads",
                "4",
                "--no-migrate",
            ],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: kill -9 takes the workers too
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, "server exited while starting"
            assert time.monotonic() < deadline, "server did not become ready in 90 s"
            time.sleep(0.2)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()
