"""Harvest detection across real server processes: two `consentry serve` processes on one
database (a scratch PostgreSQL database in the PostgreSQL run, an SQLite file in the
SQLite run) sharing one Redis. A harvesting client that alternates between them, probing
people ids, is throttled on the call after the 100th 404 and suspended on the call after
the 400th, exactly as one process would do it: each process sees the other's calls on
its next call, instead of half of them until the next database merge.

Needs Redis at CONSENTRY_TEST_REDIS_URL (default redis://127.0.0.1:6379/15), skipped
with the reason otherwise; keys carry a prefix unique to the run, deleted afterwards."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.live_servers import (
    REDIS_URL,
    Server,
    base_env,
    redis_env,
    run_python,
    scratch_database,
)

WORLD = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from consentry.detection.models import RuleSetting
from consentry.oauth.pairwise import app_scoped_id
from consentry.people.models import Person
from tests.graph_fixtures import direct_app, direct_consent, direct_token
out = {}
for name in ("throttled", "suspended"):
    app = direct_app()
    p = Person.objects.create(email=f"{name}@example.test", name=name, password="!")
    raw = direct_token(direct_consent(p.pk, app, ["openid", "profile"]), ["openid", "profile"])
    probes = [app_scoped_id(app.pk, 10**8 + i) for i in range(450)]
    out[name] = {"token": raw, "probes": probes}
    if name == "suspended":  # no throttle for this one: the probing goes on to suspension
        RuleSetting.objects.create(rule="enumeration_throttle", app_id=app.pk, enabled=False)
print(json.dumps(out))
"""


@pytest.fixture
def prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {type(exc).__name__}")
    name = f"t{uuid.uuid4().hex}:"
    yield name
    for key in client.scan_iter(match=name + "*", count=1000):
        client.delete(key)
    client.close()


def harvest(servers: tuple[Server, Server], token: str, probes: list[str]) -> list[int]:
    """Probe people ids, alternating between the servers, until one refuses."""
    statuses = []
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        for n, probe in enumerate(probes):
            status = http.get(f"{servers[n % 2].base}/v1/people/{probe}").status_code
            statuses.append(status)
            if status != 404:
                break
    return statuses


def test_harvest_alternating_between_two_processes_is_stopped_as_early_as_on_one(
    tmp_path: Path, prefix: str
) -> None:
    with scratch_database(tmp_path) as url:
        env = base_env(
            tmp_path,
            url,
            CONSENTRY_RATE_TOKEN_PER_MINUTE="100000",
            CONSENTRY_RATE_APP_PER_MINUTE="100000",
            **redis_env(prefix),
        )
        world = json.loads(run_python(env, WORLD).strip().splitlines()[-1])
        a, b = Server(env).start(), Server(env).start()
        try:
            throttled = harvest((a, b), **world["throttled"])
            # enumeration_throttle: 100 404s, counted across both processes
            assert throttled == [404] * 100 + [429], throttled[95:]
            for server in (a, b):  # refused by both
                response = httpx.get(
                    f"{server.base}/v1/people/{world['throttled']['probes'][-1]}",
                    headers={"Authorization": f"Bearer {world['throttled']['token']}"},
                    timeout=30,
                )
                assert response.status_code == 429
            suspended = harvest((a, b), **world["suspended"])
            # enumeration_suspend: 400 404s; from the next call on the app is refused
            assert suspended[:400] == [404] * 400, suspended.index(suspended[-1])
            assert len(suspended) == 401
            assert suspended[400] == 401, suspended[400]
        finally:
            a.stop()
            b.stop()
