"""Lifecycle jobs on the task queue, driven by moving a controllable clock (freezegun):
grants expire 90 days after last use with their tokens, unused apps lose their tokens,
live apps recertify yearly (reminders at 30 and 7 days, lapse, restore)."""

from __future__ import annotations

import datetime as dt
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

# Load the URL map (and the Graph API's pydantic schemas) before freezegun replaces
# `datetime.date`: pydantic cannot build a schema for freezegun's stand-in.
from consentry import urls as _urls  # noqa: F401
from consentry.developers import rules
from consentry.developers.actions import (
    Declaration,
    do_decide_review,
    do_register_app,
)
from consentry.developers.lifecycle import do_clear_tokens_of_unused_apps
from consentry.developers.models import AppProfile, AppRole
from consentry.developers.tasks import ensure_lifecycle_scheduled
from consentry.grants.actions import do_record_consent_use
from consentry.grants.models import Consent
from consentry.notices.models import Notice
from consentry.oauth.models import AccessToken, RefreshToken
from consentry.oauth.tokens import access_token_for
from tests.oauth_flow import REDIRECT_URI, cheap_argon2, make_app, obtain_token, refresh  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]
BASIC = ["openid", "profile"]


def me(raw: str, fields: str) -> dict:
    response = Client().get("/v1/me", {"fields": fields}, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def test_grants_expire_90_days_after_last_use_and_their_tokens_die(make_person, run_tasks):
    person = make_person(birthday=dt.date(1990, 1, 2))
    app, secret = make_app(permissions=["user_birthday"])
    with freeze_time(timezone.now()) as clock:
        tokens = obtain_token(Client(), person, app, [*BASIC, "user_birthday"])
        ensure_lifecycle_scheduled()
        run_tasks()  # a sweep now changes nothing
        assert access_token_for(tokens["access_token"]) is not None
        clock.tick(timedelta(days=89))
        run_tasks()
        consent = Consent.objects.get(person=person, application=app)
        assert consent.permission_mask != 0
        clock.tick(timedelta(days=1, minutes=1))
        assert run_tasks() >= 1  # the sweep that was waiting for its time
        consent.refresh_from_db()
        assert consent.permission_mask == 0
        assert not consent.permissions.filter(revoked_at__isnull=True).exists()
        assert not AccessToken.objects.filter(user=person).exists()
        assert not RefreshToken.objects.filter(user=person, revoked__isnull=True).exists()
        assert refresh(Client(), app, tokens["refresh_token"], secret).status_code == 400
        # The person can grant again; the old grant does not come back by itself.
        again = obtain_token(Client(), person, app, [*BASIC, "user_birthday"])
        assert me(again["access_token"], "birthday")["birthday"] == "1990-01-02"


def test_an_app_unused_for_90_days_loses_every_token(make_person):
    alice, bob = make_person(), make_person()
    idle, _ = make_app(name="Idle")
    busy, _ = make_app(name="Busy")
    start = timezone.now()
    with freeze_time(start) as clock:
        obtain_token(Client(), alice, idle, BASIC)
        busy_tokens = obtain_token(Client(), bob, busy, BASIC)
        clock.tick(timedelta(days=60))
        do_record_consent_use(Consent.objects.get(person=bob, application=busy))
        clock.tick(timedelta(days=31))
        cleared = do_clear_tokens_of_unused_apps(timezone.now())
    assert cleared == [idle.pk]
    assert not AccessToken.objects.filter(application=idle).exists()
    assert not RefreshToken.objects.filter(application=idle, revoked__isnull=True).exists()
    assert AccessToken.objects.filter(application=busy).exists()
    assert AppProfile.objects.get(application=idle).unused_tokens_cleared_at is not None
    del busy_tokens


def test_recertification_reminds_at_30_and_7_days_then_lapses_until_recertified(
    make_person, run_tasks
):
    dev = make_person(email="dev@example.test")
    tester = make_person()
    person = make_person(birthday=dt.date(1985, 3, 4))
    start = timezone.now()
    with freeze_time(start) as clock:
        app, _secret = do_register_app(
            owner=None,
            name="Calendar",
            redirect_uris=[REDIRECT_URI],
            privacy_policy_url="https://cal.example.test/privacy",
            live=True,
            declarations=[Declaration("user_birthday", "Birthdays in your calendar", 365)],
        )
        AppRole.objects.create(application=app, person=dev, role="admin")
        AppRole.objects.create(application=app, person=tester, role="tester")
        app.members.add(dev, tester)
        do_decide_review(app, None, approve=["user_birthday"], reason="ok")
        app.plain_client_secret = _secret  # type: ignore[attr-defined]
        scopes = [*BASIC, "user_birthday"]
        obtain_token(Client(), person, app, scopes)
        ensure_lifecycle_scheduled()
        run_tasks()
        assert not Notice.objects.exists()

        clock.move_to(start + timedelta(days=335, minutes=1))
        obtain_token(Client(), person, app, scopes)  # the person keeps using the app
        run_tasks()
        first = Notice.objects.get(kind="developers.recertification_due")
        assert first.person == dev  # admins and developers, not testers
        assert "30 days" in first.title
        run_tasks()  # the email task the sweep queued on commit
        assert [m.to for m in mail.outbox] == [[dev.email]]
        assert Notice.objects.count() == 1  # once per stage

        clock.move_to(start + timedelta(days=358, minutes=1))
        obtain_token(Client(), person, app, scopes)
        ensure_lifecycle_scheduled()
        run_tasks()
        assert Notice.objects.filter(kind="developers.recertification_due").count() == 2

        clock.move_to(start + rules.RECERTIFY_EVERY - timedelta(minutes=10))
        raw = obtain_token(Client(), person, app, scopes)["access_token"]
        assert me(raw, "birthday")["birthday"] == "1985-03-04"
        clock.tick(timedelta(minutes=11))
        ensure_lifecycle_scheduled()
        run_tasks()
        app.refresh_from_db()
        assert app.approved_permissions == []
        assert AppProfile.objects.get(application=app).lapsed_at is not None
        assert Notice.objects.filter(kind="developers.recertification_lapsed").exists()
        assert "birthday" not in me(raw, "name,birthday")  # reviewed permission lapsed
        assert me(raw, "name")["name"] == person.name  # basic login keeps working

        client = Client()
        client.force_login(dev, backend="django.contrib.auth.backends.ModelBackend")
        page = client.get(f"/developers/apps/{app.pk}/").content.decode()
        assert "Certification lapsed" in page
        assert "recertify now" in client.get("/developers/").content.decode()
        assert client.post(f"/developers/apps/{app.pk}/recertify").status_code == 302
        app.refresh_from_db()
        assert app.approved_permissions == ["user_birthday"]
        assert me(raw, "birthday")["birthday"] == "1985-03-04"
        profile = AppProfile.objects.get(application=app)
        assert profile.lapsed_at is None
        assert profile.certified_at == timezone.now()


def test_recertifying_posts_signs_the_agreement_again(make_person):
    dev = make_person()
    app, _ = do_register_app(
        owner=None,
        name="Posts",
        redirect_uris=[REDIRECT_URI],
        privacy_policy_url="https://p.example.test/privacy",
        live=True,
        declarations=[Declaration("user_posts", "Your posts", 30)],
        signer_name="First Signer",
    )
    AppRole.objects.create(application=app, person=dev, role="developer")
    client = Client()
    client.force_login(dev, backend="django.contrib.auth.backends.ModelBackend")
    refused = client.post(f"/developers/apps/{app.pk}/recertify", {"signer_name": ""})
    assert refused.status_code == 400
    assert (
        client.post(
            f"/developers/apps/{app.pk}/recertify", {"signer_name": "Second Signer"}
        ).status_code
        == 302
    )
    assert [a.signer_name for a in app.signed_agreements.order_by("pk")] == [
        "First Signer",
        "Second Signer",
    ]


def test_certification_stages_are_a_pure_rule():
    certified = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    stage = rules.certification_stage
    assert stage(certified, certified + timedelta(days=300)) is rules.CertStage.CURRENT
    assert stage(certified, certified + timedelta(days=336)) is rules.CertStage.REMIND_30
    assert stage(certified, certified + timedelta(days=359)) is rules.CertStage.REMIND_7
    assert stage(certified, certified + timedelta(days=365)) is rules.CertStage.LAPSED
    assert rules.reminder_due(rules.CertStage.REMIND_30, None) == 30
    assert rules.reminder_due(rules.CertStage.REMIND_30, 30) is None
    assert rules.reminder_due(rules.CertStage.REMIND_7, 30) == 7
    assert rules.reminder_due(rules.CertStage.REMIND_7, 7) is None


def test_lifecycle_command_runs_every_job_once(make_person, capsys):
    call_command("lifecycle")
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "consents_expired": 0,
        "unused_apps_cleared": [],
        "reminders": [],
        "lapsed": [],
        "deliveries_tried": 0,
    }
