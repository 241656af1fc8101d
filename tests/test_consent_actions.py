"""consentry.grants.actions: the consent record and the tokens that derive from it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from consentry.grants.actions import (
    active_permissions,
    consent_for,
    do_grant_consent,
    do_record_consent_use,
    do_revoke_consent,
    do_revoke_permission,
)
from consentry.grants.models import Consent, ConsentPermission
from consentry.oauth.models import RefreshToken
from consentry.oauth.tokens import access_token_for
from tests.oauth_flow import cheap_argon2, make_app, obtain_token  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]


def test_grant_creates_one_consent_and_extends_it(make_person):
    person = make_person()
    app, _ = make_app(permissions=["user_birthday"])
    first = do_grant_consent(person, app, {"openid", "profile"}, purposes_shown={"profile": "p"})
    again = do_grant_consent(person, app, {"user_birthday"}, email_choice="real")
    assert first.pk == again.pk
    assert Consent.objects.count() == 1
    assert active_permissions(again) == {"openid", "profile", "user_birthday"}
    assert ConsentPermission.objects.get(permission="profile").purpose_shown == "p"


def test_grant_refuses_unknown_permissions(make_person):
    app, _ = make_app()
    with pytest.raises(ValueError, match="unknown"):
        do_grant_consent(make_person(), app, {"read_everything"})


def test_revoked_consent_regranted_holds_only_the_new_permissions(make_person):
    person = make_person()
    app, _ = make_app(permissions=["user_birthday"])
    consent = do_grant_consent(person, app, {"openid", "user_birthday"})
    do_revoke_consent(consent)
    assert active_permissions(consent_for(person.pk, app.pk)) == set()
    consent = do_grant_consent(person, app, {"openid"})
    assert active_permissions(consent) == {"openid"}


def test_revoking_the_consent_revokes_refresh_tokens_in_the_same_call(make_person):
    person = make_person()
    app, _ = make_app()
    obtain_token(Client(), person, app, ["openid", "profile"])
    do_revoke_consent(Consent.objects.get(person=person))
    assert not RefreshToken.objects.filter(user=person, revoked__isnull=True).exists()


def test_revoking_the_last_permission_revokes_the_consent(make_person):
    person = make_person()
    app, _ = make_app()
    tokens = obtain_token(Client(), person, app, ["openid"])
    consent = Consent.objects.get(person=person)
    do_revoke_permission(consent, "openid")
    consent.refresh_from_db()
    assert consent.revoked_at is not None
    assert access_token_for(tokens["access_token"]) is None


def test_recording_use_moves_expiry_but_writes_at_most_hourly(make_person):
    person = make_person()
    app, _ = make_app()
    consent = do_grant_consent(person, app, {"openid"})
    stamp = consent.last_used_at
    do_record_consent_use(consent, now=stamp + timedelta(minutes=30))
    consent.refresh_from_db()
    assert consent.last_used_at == stamp
    later = stamp + timedelta(days=5)
    do_record_consent_use(consent, now=later)
    consent.refresh_from_db()
    assert consent.last_used_at == later
    assert consent.expires_at == later + timedelta(days=90)


def test_recording_use_does_not_revive_an_expired_consent(make_person):
    person = make_person()
    app, _ = make_app()
    consent = do_grant_consent(person, app, {"openid"})
    Consent.objects.filter(pk=consent.pk).update(expires_at=timezone.now() - timedelta(days=1))
    consent.refresh_from_db()
    do_record_consent_use(consent)
    consent.refresh_from_db()
    assert not consent.is_active()
