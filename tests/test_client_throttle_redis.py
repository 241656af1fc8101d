"""The client-authentication throttle across server processes: two `consentry serve`
processes on PostgreSQL sharing one Redis count the same failures, and wrong secrets from
one address never stop the real client at another.

Needs PostgreSQL (two processes on one database) and Redis at CONSENTRY_TEST_REDIS_URL
(default redis://127.0.0.1:6379/15); keys carry a prefix unique to the run, and nothing
is ever flushed. Also: `consentry serve --workers N` without Redis warns."""

from __future__ import annotations

import functools
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis
from django.db import connection

from tests.oauth_flow import basic_auth, cheap_argon2, make_app  # noqa: F401

REDIS_URL = os.environ.get("CONSENTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env |= {"CONSENTRY_VAR_DIR": str(tmp_path), "CONSENTRY_DEBUG": "1", **extra}
    return env


def _spawn(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "consentry", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _start(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return _wait_until_up(_spawn(args, env, port), port)


def _wait_until_up(proc: subprocess.Popen[str], port: int) -> subprocess.Popen[str]:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"server exited: {output[-2000:]}")
            if time.monotonic() > deadline:
                proc.terminate()
                pytest.fail("server did not start within 60 s")
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    output = proc.stdout.read() if proc.stdout else ""
    if proc.stdout:
        proc.stdout.close()
    return output


@functools.cache
def _worker_args() -> tuple[str, ...]:
    """`--no-worker` where serve has a background-task worker to switch off."""
    help_text = subprocess.run(
        [sys.executable, "-m", "consentry", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env=_server_env(Path(os.environ.get("CONSENTRY_VAR_DIR", "var/test"))),
    ).stdout
    return ("--no-worker",) if "--no-worker" in help_text else ()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__})")
    prefix = f"consentry-test-{secrets.token_hex(8)}"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _token_call(http: httpx.Client, port: int, client_id: str, secret: str) -> httpx.Response:
    return http.post(
        f"http://127.0.0.1:{port}/oauth/token/",
        data={"grant_type": "refresh_token", "refresh_token": "not-a-refresh-token"},
        headers={"Authorization": basic_auth(client_id, secret)},
        timeout=30,
    )


@pytest.mark.slow
@pytest.mark.usefixtures("cheap_argon2")
def test_two_processes_share_the_throttle_and_spare_the_real_client(
    transactional_db, tmp_path, redis_prefix
):
    if connection.vendor != "postgresql":
        pytest.skip("two server processes need a server database: runs in the PostgreSQL pass")
    app, secret = make_app()
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = _server_env(
        tmp_path,
        CONSENTRY_DATABASE_URL=url,
        CONSENTRY_REDIS_URL=REDIS_URL,
        CONSENTRY_CACHE_PREFIX=redis_prefix,
    )
    args = ["--workers", "1", "--threads", "2", "--no-migrate", *_worker_args()]
    ports = [_free_port(), _free_port()]
    servers = [_spawn(args, env, port) for port in ports]
    try:
        for proc, port in zip(servers, ports, strict=True):
            _wait_until_up(proc, port)
        # The guesser connects from 127.0.0.2, the real client from 127.0.0.1.
        guesser = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        real = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.1"))
        answers: list[tuple[int, int]] = []
        for i in range(16):
            port = ports[i % 2]
            answers.append(
                (port, _token_call(guesser, port, app.client_id, f"guess-{i}").status_code)
            )
            if i >= 9 and {p for p, status in answers if status == 429} == set(ports):
                break
        statuses = [status for _, status in answers]
        assert set(statuses) <= {401, 429}
        # Each process alone saw at most 5 failures, fewer than the free allowance: the
        # delays (429) come only from counting both processes' failures together.
        assert statuses[:5] == [401] * 5
        assert {port for port, status in answers if status == 429} == set(ports)
        delayed = _token_call(guesser, ports[0], app.client_id, "guess")
        assert delayed.status_code == 429
        assert int(delayed.headers["Retry-After"]) >= 1
        # The real client, elsewhere, authenticates on both processes (400 invalid_grant
        # for the bogus refresh token means the secret was accepted).
        for port in ports:
            response = _token_call(real, port, app.client_id, secret)
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "invalid_grant"
        guesser.close()
        real.close()
    finally:
        for proc in servers:
            _stop(proc)


@pytest.mark.slow
def test_serve_with_several_workers_and_no_redis_warns(tmp_path):
    env = _server_env(tmp_path, CONSENTRY_DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    port = _free_port()
    proc = _start(["--workers", "2", "--threads", "1", "--no-migrate", *_worker_args()], env, port)
    try:
        # A Graph API request at the documented maximum lengths (`fields` of 200
        # four-byte characters, percent-encoded; a 200-character cursor) fits the server's
        # request-line limit: the API answers it (401 here: no token), not gunicorn (414).
        fields = quote("\U0001f600" * 200)
        response = httpx.get(
            f"http://127.0.0.1:{port}/v1/me/friends?fields={fields}&limit=5000&after={'a' * 200}",
            timeout=30,
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_token"
    finally:
        output = _stop(proc)
    assert "without CONSENTRY_REDIS_URL" in output
    assert "per process" in output
