"""The consent screen: what it asks (pure rule) and how it reads, in English and Dutch."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from consentry.grants.permissions import BASIC_LOGIN, PERMISSIONS
from consentry.oauth.consent import plan_consent
from tests.oauth_flow import authorize_url, cheap_argon2, make_app, pkce_pair  # noqa: F401

NAMES = sorted(PERMISSIONS)


@settings(max_examples=200, deadline=None)
@given(
    requested=st.lists(st.sampled_from(NAMES), max_size=10),
    active=st.sets(st.sampled_from(NAMES)),
    ticked=st.sets(st.sampled_from(NAMES)),
)
def test_granted_is_what_was_held_plus_fixed_plus_ticked_and_never_more(requested, active, ticked):
    plan = plan_consent(requested, active, {})
    granted = set(plan.granted(ticked))
    assert granted <= set(requested)
    assert {r.permission for r in plan.rows}.isdisjoint(active)
    assert set(requested) & BASIC_LOGIN <= granted
    for row in plan.rows:
        assert row.fixed == (row.permission in BASIC_LOGIN)
        assert (row.permission in granted) == (row.fixed or row.permission in ticked)
    assert plan.nothing_new == (set(requested) <= active)


def test_plan_shows_the_apps_declared_purpose():
    plan = plan_consent(["openid", "user_birthday"], set(), {"user_birthday": "Calendar"})
    assert [(r.permission, r.purpose) for r in plan.rows] == [
        ("openid", ""),
        ("user_birthday", "Calendar"),
    ]


@pytest.fixture
def consent_page(make_person, cheap_argon2):  # noqa: F811
    def get(language_cookie: str = "", **headers: str):
        person = make_person()
        app, _ = make_app(
            name="Agenda",
            permissions=["user_birthday"],
            purposes={"user_birthday": "Birthdays in your calendar"},
        )
        client = Client()
        client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
        if language_cookie:
            client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = language_cookie
        _verifier, challenge = pkce_pair()
        scopes = ["openid", "profile", "email", "user_birthday"]
        return client.get(authorize_url(app, scopes, challenge), **headers)

    return get


@pytest.mark.django_db
def test_consent_page_lists_each_permission_with_its_purpose(consent_page):
    html = consent_page().content.decode()
    assert "Agenda wants to use your Consentry account" in html
    assert "Birthdays in your calendar" in html
    assert "Reviewed and live." in html
    assert 'name="permission" value="user_birthday" checked' in html
    assert 'name="permission" value="email" checked' in html
    assert 'value="openid"' not in html
    assert 'value="profile"' not in html
    assert 'name="email_choice" value="relay"' in html


@pytest.mark.django_db
def test_consent_page_speaks_dutch_to_a_dutch_browser(consent_page):
    html = consent_page(HTTP_ACCEPT_LANGUAGE="nl-NL,nl;q=0.9").content.decode()
    assert '<html lang="nl">' in html
    assert "Agenda wil je Consentry-account gebruiken" in html
    assert "Je verjaardag" in html
    assert "Toestaan" in html
    assert "Weigeren" in html
    assert "Afmelden" in html  # base.html


@pytest.mark.django_db
def test_language_cookie_chooses_dutch(consent_page):
    html = consent_page(language_cookie="nl").content.decode()
    assert "Toestaan" in html
