"""Loopback load test: `consentry serve --workers 2` on PostgreSQL under 60 s of mixed
Graph API reads, with Redis (shared cache, rate limits) and then without (per-process
cache), on the same scratch database and world.

Mix per request: 40 % /v1/me, 30 % /v1/me/friends, 20 % /v1/me/posts, 10 %
/v1/people/<a friend's app-scoped id>, over --tokens people each with --friends friends.
--concurrency requests are kept in flight (httpx, asyncio). Every answer but 200 and a
deliberate 429 counts as an error.

Figures per run: requests, throughput (req/s), p50 and p99 latency, statuses; the
closing JSON also holds the ratio of throughput with Redis over without.

Run: CONSENTRY_DATABASE_URL=postgres://... consentry bench load_mixed [--seconds 60]
     (CONSENTRY_TEST_REDIS_URL or redis://127.0.0.1:6379/15 for Redis; keys get a
     unique prefix and are left to expire.)
Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consentry.ledger.scratch import setup_scratch_django

REPO = Path(__file__).resolve().parent.parent

ALL = [
    "openid",
    "profile",
    "email",
    "user_birthday",
    "user_hometown",
    "user_location",
    "user_relationships",
    "user_likes",
    "user_posts",
    "user_friends",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_world(tokens: int, friends: int) -> list[dict[str, object]]:
    """People with friends, posts, consents to one live app and access tokens."""
    import secrets
    from datetime import date, timedelta

    from django.utils import timezone

    from consentry.grants.models import Consent, ConsentPermission
    from consentry.grants.permissions import permissions_to_mask
    from consentry.oauth.models import AccessToken, Application
    from consentry.oauth.pairwise import app_scoped_ids
    from consentry.people.models import Friendship, Person, Post

    now = timezone.now()
    total = tokens * (friends + 1)
    people = Person.objects.bulk_create(
        [
            Person(
                email=f"load{i}@example.test",
                name=f"Load {i}",
                birthday=date(1980, 1, 1) + timedelta(days=i % 9000),
                hometown=f"Town {i % 97}",
                likes=["tea", "maps"],
                friend_share_mask=0xFFFF,
                password="!",
            )
            for i in range(total)
        ],
        batch_size=2000,
    )
    app = Application.objects.create(
        name="load app",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://load.example.test/callback",
        hash_client_secret=False,
        client_secret="",
        status="live",
        approved_permissions=sorted(ALL),
        agreement_signed_at=now,
        limits={"requests_per_minute": 10_000_000, "token_requests_per_minute": 10_000_000},
    )
    consents = Consent.objects.bulk_create(
        [
            Consent(
                person=p,
                application=app,
                expires_at=now + timedelta(days=90),
                email_choice="real",
                permission_mask=permissions_to_mask(ALL),
            )
            for p in people
        ],
        batch_size=2000,
    )
    ConsentPermission.objects.bulk_create(
        [ConsentPermission(consent=c, permission=perm) for c in consents for perm in ALL],
        batch_size=5000,
    )
    links = []
    viewers = people[:tokens]
    out: list[dict[str, object]] = []
    for v, viewer in enumerate(viewers):
        mine = people[tokens + v * friends : tokens + (v + 1) * friends]
        links += [Friendship(person=viewer, friend=f) for f in mine]
        links += [Friendship(person=f, friend=viewer) for f in mine]
        raw = secrets.token_urlsafe(30)
        AccessToken.objects.create(
            user=viewer,
            application=app,
            consent=consents[v],
            token=raw,
            scope=" ".join(ALL),
            expires=now + timedelta(hours=6),
        )
        out.append({"token": raw, "friends": app_scoped_ids(app.pk, [f.pk for f in mine[:10]])})
    Friendship.objects.bulk_create(links, batch_size=5000)
    Post.objects.bulk_create(
        [Post(author=v, message=f"post {i}") for v in viewers for i in range(20)], batch_size=5000
    )
    return out


class Server:
    def __init__(self, env: dict[str, str], workers: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "consentry", "serve", "--port", str(self.port)),
                *("--workers", str(workers), "--no-migrate"),
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited while starting")
            time.sleep(0.3)
        raise RuntimeError("server not ready in 120 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


async def load(base: str, world: list[dict[str, object]], seconds: float, concurrency: int):
    import httpx

    rng = random.Random(7)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    stop_at = time.monotonic() + seconds

    def pick() -> tuple[str, str]:
        who = rng.choice(world)
        roll = rng.random()
        if roll < 0.4:
            path = "/v1/me?fields=name,birthday,hometown"
        elif roll < 0.7:
            path = "/v1/me/friends?fields=name,birthday&limit=25"
        elif roll < 0.9:
            path = "/v1/me/posts?limit=10"
        else:
            path = f"/v1/people/{rng.choice(who['friends'])}?fields=name,likes"  # type: ignore[arg-type]
        return path, str(who["token"])

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            path, token = pick()
            start = time.perf_counter()
            try:
                response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
                statuses[response.status_code] += 1
            except httpx.HTTPError as exc:
                statuses[0] += 1
                failures[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - start)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies, statuses, failures


def run(env: dict[str, str], world, args: argparse.Namespace, label: str) -> dict[str, object]:
    # With Redis, the RQ app's tables join the schema: migrate with the run's own settings
    # (else /readyz reports pending migrations and the server never takes traffic).
    subprocess.run(
        [sys.executable, "-m", "consentry", "migrate", "-v0"], env=env, cwd=REPO, check=True
    )
    server = Server(env, args.workers)
    try:
        server.wait_ready()
        asyncio.run(load(server.base, world, 3, args.concurrency))  # warm-up
        latencies, statuses, failures = asyncio.run(
            load(server.base, world, args.seconds, args.concurrency)
        )
    finally:
        server.stop()
    latencies.sort()
    errors = sum(n for status, n in statuses.items() if status not in (200, 429))
    row: dict[str, object] = {
        "run": label,
        "requests": len(latencies),
        "throughput_rps": round(len(latencies) / args.seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1) if latencies else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors,
        "transport_errors": dict(failures),
    }
    print(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--friends", type=int, default=100)
    args = parser.parse_args()

    where = setup_scratch_django("bench_load_mixed")
    print(f"scratch database: {where}")
    world = build_world(args.tokens, args.friends)
    from django.conf import settings
    from django.db import connection

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env |= {  # production mode: no debug query log
        "CONSENTRY_VAR_DIR": str(settings.VAR_DIR),
        "CONSENTRY_DATABASE_URL": os.environ["CONSENTRY_DATABASE_URL"],
        "CONSENTRY_LOG_FORMAT": "json",
        "PYTHONPATH": str(REPO),
    }
    redis_url = os.environ.get("CONSENTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    with_redis = run(
        env
        | {
            "CONSENTRY_REDIS_URL": redis_url,
            "CONSENTRY_CACHE_PREFIX": f"load{uuid.uuid4().hex}:",
        },
        world,
        args,
        "redis",
    )
    without = run(env, world, args, "no redis")
    summary = {
        "database": connection.vendor,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "redis": with_redis,
        "no_redis": without,
        "throughput_ratio_redis_over_none": round(
            float(with_redis["throughput_rps"]) / max(float(without["throughput_rps"]), 0.1),  # type: ignore[arg-type]
            2,
        ),
        "errors": int(with_redis["errors"]) + int(without["errors"]),  # type: ignore[call-overload]
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
