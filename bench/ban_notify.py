"""Benchmark: ban an app whose ledger reaches 100,000 people and notify every one of them
(docs/rules.md: "100,000 affected people must all have their notices within 60 seconds on one
machine").

The world: --people people (default 100,000), --installers of them (default 1,000) with a
grant to the app, and one ledger entry per installer releasing name, birthday and likes
of 100 people, so the ledger's blast radius is exactly the --people people. Then, timed:

  ban      do_ban_app(): status, every grant and token revoked, incident row (one
           transaction), the notification task enqueued on commit;
  inbox    the worker (the database task backend, run in this process as `consentry
           worker` would) runs notify_incident: the exposures from the ledger, one notice
           per person in batches of 5,000 with one bulk insert each and the progress
           written after each batch;
  email    the email tasks the notices queued (Django's dummy backend here: the cost of
           building and handing over every message, not of an SMTP server).

Baseline, same run and database: do_send_notices() writing the same number of notices
with the same title and body, prepared in advance (what the insert alone costs).

    .venv/bin/python bench/ban_notify.py [--people 100000]
    CONSENTRY_DATABASE_URL=postgres://... .venv/bin/python bench/ban_notify.py

Prints the figures, then one line of JSON. Target: inbox (ban to every notice written)
under 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_SECONDS = 60.0
PER_CALL = 100


def build(people: int, installers: int) -> tuple[Any, list[int]]:
    from datetime import date, timedelta

    from django.db import transaction
    from django.utils import timezone

    from consentry.grants.models import Consent
    from consentry.grants.permissions import fields_to_mask, permissions_to_mask
    from consentry.ledger.api import record_disclosure
    from consentry.oauth.models import AccessToken, Application, AppStatus
    from consentry.people.models import Person

    rows = Person.objects.bulk_create(
        [
            Person(
                email=f"p{i}@ban.bench",
                name=f"Person {i}",
                birthday=date(1960, 1, 1) + timedelta(days=i % 15000),
                password="!",
            )
            for i in range(people)
        ],
        batch_size=5000,
    )
    ids = [p.pk for p in rows]
    app = Application.objects.create(
        name="Harvesting quiz",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://quiz.example/callback",
        hash_client_secret=False,
        client_secret="x",
        status=AppStatus.LIVE,
        approved_permissions=["user_birthday", "user_likes", "user_friends"],
    )
    now = timezone.now()
    consents = Consent.objects.bulk_create(
        [
            Consent(
                person_id=pid,
                application=app,
                expires_at=now + timedelta(days=90),
                permission_mask=permissions_to_mask(["openid", "profile", "user_friends"]),
            )
            for pid in ids[:installers]
        ],
        batch_size=5000,
    )
    AccessToken.objects.bulk_create(
        [
            AccessToken(
                user_id=c.person_id,
                application=app,
                consent=c,
                token=f"bench-token-{c.pk}",
                scope="openid profile user_friends",
                expires=now + timedelta(hours=1),
            )
            for c in consents
        ],
        batch_size=5000,
    )
    mask = fields_to_mask(frozenset({"id", "name", "birthday", "likes"}))
    per_installer = max(1, -(-people // installers))
    for n, installer in enumerate(ids[:installers]):
        chunk = ids[n * per_installer : (n + 1) * per_installer] or [installer]
        with transaction.atomic():
            record_disclosure(
                app_id=app.pk,
                actor_id=installer,
                endpoint="/v1/me/friends",
                released=[(pid, mask) for pid in chunk],
            )
    return app, ids


def baseline(ids: list[int], title: str, body: str) -> float:
    """The same number of notices with the same title and body, written by the same
    do_send_notices() with no ledger work and no per-person text, then deleted."""
    from consentry.notices.actions import NoticeDraft, do_send_notices
    from consentry.notices.models import Notice

    drafts = [NoticeDraft(pid, "baseline", title, body, {"fields": {}}) for pid in ids]
    started = time.perf_counter()
    do_send_notices(drafts, email=False)
    elapsed = time.perf_counter() - started
    Notice.objects.filter(kind="baseline").delete()
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--installers", type=int, default=1_000)
    args = parser.parse_args(argv)
    os.environ["CONSENTRY_DEBUG"] = "0"
    os.environ["CONSENTRY_EMAIL_URL"] = ""
    os.environ.setdefault(
        "CONSENTRY_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "bench")
    )
    from consentry.ledger.scratch import setup_scratch_django

    where = setup_scratch_django("bench_ban_notify")
    from django.conf import settings

    settings.EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
    return run(where, args.people, args.installers)


def run(where: str, people: int, installers: int) -> dict[str, Any]:
    from django.db import connection

    from consentry.incidents.actions import do_ban_app
    from consentry.incidents.models import Incident
    from consentry.ledger.api import blast_radius
    from consentry.notices.models import Notice
    from consentry.web.worker import run_ready_tasks

    started = time.perf_counter()
    app, ids = build(people, installers)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    radius = len(blast_radius(app.pk))
    print(
        f"world: {people} people, {installers} installers, blast radius {radius} ({where}, "
        f"{time.perf_counter() - started:.1f}s to build)"
    )

    t0 = time.perf_counter()
    incident = do_ban_app(app, None, "bench")
    t_ban = time.perf_counter() - t0
    assert run_ready_tasks(max_tasks=1) == 1  # notify_incident: the first task queued
    t_inbox = time.perf_counter() - t0
    incident = Incident.objects.get(pk=incident.pk)
    assert incident.status == Incident.Status.NOTIFIED, incident.status
    assert incident.notified == radius == Notice.objects.filter(kind="app_banned").count()
    emails = run_ready_tasks()
    t_email = time.perf_counter() - t0
    assert not Notice.objects.filter(emailed_at__isnull=True).exists()
    sample = Notice.objects.filter(kind="app_banned").first()
    assert sample is not None
    t_base = baseline(ids[:radius], sample.title, sample.body)

    result = {
        "bench": "ban_notify",
        "database": connection.vendor,
        "affected": radius,
        "ban_s": round(t_ban, 3),
        "inbox_s": round(t_inbox, 2),
        "inbox_and_email_s": round(t_email, 2),
        "email_tasks": emails,
        "baseline_insert_s": round(t_base, 2),
        "ratio_to_baseline": round(t_inbox / t_base, 2),
        "target_s": TARGET_SECONDS,
        "ok": t_inbox < TARGET_SECONDS,
    }
    print(
        f"ban {t_ban:.2f}s; every notice in the inbox after {t_inbox:.1f}s "
        f"({radius / t_inbox:,.0f}/s); emails handed over after {t_email:.1f}s; "
        f"writing as many prepared notices {t_base:.1f}s"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
