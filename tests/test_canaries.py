"""Canaries: a leaked file built from one app's Graph API responses names that app and no
other, with its app-scoped ids and again with the ids stripped (seed-account values); mail
to a relay address after a deletion attestation marks the attestation false."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from consentry.detection.engine import detector
from consentry.grants.models import Consent
from consentry.incidents import canaries
from consentry.incidents.actions import do_record_attestation
from consentry.incidents.models import CanaryAccount, CanarySighting, DeletionAttestation
from consentry.people.actions import do_add_friendship
from tests.detection_world import ALL_FIELDS, NO_LIMITS
from tests.graph_fixtures import direct_app, direct_consent, direct_token

PERMS = ["openid", "profile", "user_birthday", "user_hometown", "user_likes", "user_friends"]


@pytest.fixture(autouse=True)
def _fresh(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    detector().forget()
    yield
    detector().forget()


def _app():
    return direct_app(
        approved=["user_birthday", "user_hometown", "user_likes", "user_friends"],
        limits=NO_LIMITS,
    )


def _responses(client, token):
    out = []
    for path in ("/v1/me", "/v1/me/friends"):
        response = client.get(
            path, {"fields": ALL_FIELDS + ",email"}, HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        assert response.status_code == 200
        data = response.json()["data"]
        out += data if isinstance(data, list) else [data]
    return out


@pytest.fixture
def two_apps(make_person):
    a, b = _app(), _app()
    people = [make_person(hometown="Delft", likes=["chess"]) for _ in range(6)]
    for other in people[1:]:
        do_add_friendship(people[0], other)
    seeded = canaries.do_seed_canaries()
    assert {c.app_id for c in seeded} == {a.pk, b.pk}
    client = Client()
    leaked: dict[int, list[dict]] = {}
    for app in (a, b):
        records = []
        for person in people:
            token = direct_token(direct_consent(person.pk, app, PERMS), PERMS)
            records += _responses(client, token)
        # Staff sign in to the app as its seed account: the app reads the canary's profile.
        canary = CanaryAccount.objects.get(app_id=app.pk)
        consent = Consent.objects.get(person_id=canary.person_id, application=app)
        records += _responses(client, direct_token(consent, [*PERMS, "email"]))
        leaked[app.pk] = records
    return a, b, leaked


def _jsonl(records):
    return "\n".join(json.dumps(r) for r in records)


def _csv(records):
    out = io.StringIO()
    keys = sorted({k for r in records for k in r})
    writer = csv.DictWriter(out, keys)
    writer.writeheader()
    for r in records:
        writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    return out.getvalue()


def test_a_leaked_file_with_ids_names_its_app_and_no_other(two_apps):
    a, b, leaked = two_apps
    for app, _other in ((a, b), (b, a)):
        for text in (_jsonl(leaked[app.pk]), _csv(leaked[app.pk])):
            found = canaries.check_text(text)
            assert [x.app_id for x in found] == [app.pk]
            assert found[0].ids >= 7  # six people and the canary, by app-scoped id


def test_a_leaked_file_without_ids_names_its_app_by_the_seed_account(two_apps):
    a, b, leaked = two_apps
    for app in (a, b):
        stripped = [
            {k: v for k, v in r.items() if k not in ("id", "email")} for r in leaked[app.pk]
        ]
        for text in (_jsonl(stripped), _csv(stripped)):
            found = canaries.check_text(text)
            assert [x.app_id for x in found] == [app.pk]
            assert found[0].ids == 0
            assert found[0].canary_values >= 2


def test_the_relay_address_alone_names_the_app(two_apps):
    a, _, leaked = two_apps
    emails = [r["email"] for r in leaked[a.pk] if "email" in r]
    assert len(emails) == 1
    assert "@relay." in emails[0]
    found = canaries.check_text("email\n" + emails[0] + "\n")
    assert [(x.app_id, x.relay_addresses) for x in found] == [(a.pk, 1)]


def test_canary_check_command_records_a_sighting_and_fails_on_clean_files(two_apps, tmp_path):
    _a, b, leaked = two_apps
    leak = tmp_path / "leak.jsonl"
    leak.write_text(_jsonl(leaked[b.pk]))
    out = io.StringIO()
    call_command("canary", "check", str(leak), "--json", stdout=out)
    assert [x["app_id"] for x in json.loads(out.getvalue())] == [b.pk]
    assert CanarySighting.objects.filter(app_id=b.pk).count() == 1
    clean = tmp_path / "clean.csv"
    clean.write_text("name,hometown\nAda,Delft\n")
    with pytest.raises(SystemExit) as exit_info:
        call_command("canary", "check", str(clean), stdout=io.StringIO())
    assert exit_info.value.code == 1


def test_mail_after_a_deletion_attestation_marks_it_false(two_apps):
    a, b, _ = two_apps
    canary = CanaryAccount.objects.get(app_id=a.pk)
    earlier = do_record_attestation(
        a, "We deleted everything.", None, timezone.now() - timedelta(days=2)
    )
    out = io.StringIO()
    call_command("canary", "mail-received", canary.relay_address.upper(), stdout=out)
    earlier.refresh_from_db()
    assert earlier.is_false
    assert earlier.contradicted_by.kind == CanarySighting.Kind.MAIL
    # An attestation made after the last sighting stands until the canary is seen again.
    later = do_record_attestation(a, "Deleted again.", None, timezone.now() + timedelta(days=1))
    assert not DeletionAttestation.objects.get(pk=later.pk).is_false
    assert not DeletionAttestation.objects.filter(app_id=b.pk).exists()


def test_canaries_are_not_counted_in_detection_figures(two_apps):
    a, _, _ = two_apps
    figures = detector().figures(a.pk)
    canary = CanaryAccount.objects.get(app_id=a.pk)
    assert canary.person_id not in detector()._apps[a.pk].subjects
    assert figures.installers == 6  # the seed account is not an installer
