"""Benchmark: GET /v1/me/friends?fields=name,birthday&limit=5000 for a person with 5,000
friends who all consented, through the real view (Django's test client: URL routing,
middleware, bearer token lookup, grant, rate limits, release rule, ledger write, consent
use), against a baseline that builds the same JSON from the same SQL data with no checks
and no ledger.

    .venv/bin/python bench/read_friends.py [--runs 15]

Creates its own scratch database: a temporary SQLite file under var/bench, or, when
CONSENTRY_DATABASE_URL points at PostgreSQL, a scratch database on that server (dropped
at the end). Prints the figures, then one line of JSON. Target: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FRIENDS = 5000
TARGET = 1.5
PATH = f"/v1/me/friends?fields=name,birthday&limit={FRIENDS}"


def scratch_database() -> tuple[str, Callable[[], None]]:
    """A fresh database URL and a function that removes it."""
    url = os.environ.get("CONSENTRY_DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        import psycopg

        name = f"bench_friends_{secrets.token_hex(4)}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = url.rpartition("/")

        def drop() -> None:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')

        return f"{base}/{name}", drop
    folder = ROOT / "var" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    handle, path = tempfile.mkstemp(prefix="friends-", suffix=".sqlite3", dir=folder)
    os.close(handle)

    def remove() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)

    return f"sqlite:///{path}", remove


def build_world() -> tuple[int, int, str]:
    """One person with 5,000 friends; everyone granted the app name and birthday."""
    from django.utils import timezone

    from consentry.grants.models import Consent, ConsentPermission
    from consentry.grants.permissions import permissions_to_mask
    from consentry.oauth.models import AccessToken, Application, AppStatus
    from consentry.people.models import Friendship, Person

    people = Person.objects.bulk_create(
        [
            Person(
                email=f"p{i}@bench.test",
                name=f"Person {i}",
                birthday=date(1960, 1, 1) + timedelta(days=i * 7),
                password="!",  # unusable: nobody signs in
            )
            for i in range(FRIENDS + 1)
        ],
        batch_size=1000,
    )
    me, friends = people[0], people[1:]
    Friendship.objects.bulk_create(
        [Friendship(person_id=me.pk, friend_id=f.pk) for f in friends]
        + [Friendship(person_id=f.pk, friend_id=me.pk) for f in friends],
        batch_size=2000,
    )
    app = Application.objects.create(
        name="Birthday calendar",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://calendar.example/callback",
        hash_client_secret=False,
        client_secret=secrets.token_urlsafe(32),
        status=AppStatus.LIVE,
        approved_permissions=["user_birthday", "user_friends"],
        limits={"requests_per_minute": 10**6, "token_requests_per_minute": 10**6},
    )
    now = timezone.now()
    scopes = ["openid", "profile", "user_birthday"]
    consents = Consent.objects.bulk_create(
        [
            Consent(
                person_id=p.pk,
                application=app,
                expires_at=now + timedelta(days=90),
                # What grants.actions.do_grant_consent would store for these rows.
                permission_mask=permissions_to_mask(
                    [*scopes, "user_friends"] if p.pk == me.pk else scopes
                ),
            )
            for p in people
        ],
        batch_size=1000,
    )
    ConsentPermission.objects.bulk_create(
        [ConsentPermission(consent=c, permission=s) for c in consents for s in scopes]
        + [ConsentPermission(consent=consents[0], permission="user_friends")],
        batch_size=2000,
    )
    raw = secrets.token_urlsafe(32)
    AccessToken.objects.create(
        user_id=me.pk,
        application=app,
        consent=consents[0],
        token=raw,
        scope=" ".join([*scopes, "user_friends"]),
        expires=now + timedelta(hours=1),
    )
    return me.pk, app.pk, raw


def baseline(person_id: int, app_id: int) -> bytes:
    """The same JSON straight from the database: no token, no checks, no ledger.

    Fair by construction: the same rows (friendship -> person, friend id order), the same
    app-scoped ids computed the same cheap batch way as the view (one cipher call via
    oauth.pairwise.app_scoped_ids; an app never sees raw ids, so raw ids would not be
    the same JSON), dates rendered the same way, and the same json.dumps settings as
    graph.api. It skips exactly what the issue says it skips: token, consent and rule
    checks, the consent join, and the ledger write."""
    from consentry.oauth.pairwise import app_scoped_ids
    from consentry.people.models import Friendship

    rows = list(
        Friendship.objects.filter(person_id=person_id)
        .order_by("friend_id")
        .values_list("friend_id", "friend__name", "friend__birthday")[:FRIENDS]
    )
    ids = app_scoped_ids(app_id, [row[0] for row in rows])
    data = [
        {"id": sid, "name": name, "birthday": birthday.isoformat() if birthday else None}
        for sid, (_, name, birthday) in zip(ids, rows, strict=True)
    ]
    body = {
        "data": data,
        "paging": {"next": None},
        "meta": {"withheld_subjects": 0, "withheld_fields": 0},
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)

    url, cleanup = scratch_database()
    os.environ["CONSENTRY_DATABASE_URL"] = url
    os.environ["CONSENTRY_DEBUG"] = "0"  # production settings: no query log
    os.environ.setdefault("CONSENTRY_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
    sys.path.insert(0, str(ROOT))
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

    from consentry.ledger.models import CallRecord

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    person_id, app_id, raw = build_world()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # planner statistics, as a database in service has them
    print(
        f"world: 1 person, {FRIENDS} friends, all consented "
        f"({time.perf_counter() - started:.1f}s incl. migrate, {connection.vendor})"
    )

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {raw}")

    def through_view() -> bytes:
        response = client.get(PATH)
        assert response.status_code == 200, response.content[:300]
        return response.content

    view_body = json.loads(through_view())
    base_body = json.loads(baseline(person_id, app_id))
    assert view_body == base_body, "the view and the baseline must produce the same JSON"
    assert len(view_body["data"]) == FRIENDS

    for _ in range(2):  # warm caches on both sides
        through_view()
        baseline(person_id, app_id)
    view_times, base_times = [], []
    for _ in range(runs):  # interleaved, so drift hits both sides alike
        t0 = time.perf_counter()
        through_view()
        t1 = time.perf_counter()
        baseline(person_id, app_id)
        t2 = time.perf_counter()
        view_times.append(t1 - t0)
        base_times.append(t2 - t1)

    view_ms = statistics.median(view_times) * 1000
    base_ms = statistics.median(base_times) * 1000
    ratio = view_ms / base_ms
    entries = CallRecord.objects.filter(app_id=app_id).count()
    assert entries == runs + 3, "one ledger entry per call through the view"
    print(f"view     (checks + ledger): median {view_ms:7.1f} ms over {runs} runs")
    print(f"baseline (no checks):       median {base_ms:7.1f} ms over {runs} runs")
    print(f"ratio: {ratio:.2f} (target <= {TARGET}); ledger entries written: {entries}")
    result = {
        "bench": "read_friends",
        "database": connection.vendor,
        "friends": FRIENDS,
        "runs": runs,
        "view_median_ms": round(view_ms, 2),
        "baseline_median_ms": round(base_ms, 2),
        "ratio": round(ratio, 3),
        "target": TARGET,
        "within_target": ratio <= TARGET,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
