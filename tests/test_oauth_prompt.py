"""`prompt=none` (OpenID Connect Core 3.1.2.1): the server shows no page; it answers the
app with a code when nothing is needed, else with login_required or consent_required."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.oauth_flow import (
    REDIRECT_URI,
    authorize_url,
    cheap_argon2,  # noqa: F401
    make_app,
    obtain_token,
    pkce_pair,
    redirect_params,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]


def _silent(client: Client, app, scopes, **extra: str):
    _verifier, challenge = pkce_pair()
    return client.get(authorize_url(app, scopes, challenge, state="quiet", prompt="none", **extra))


def test_signed_out_person_gives_login_required_without_a_page():
    app, _ = make_app(permissions=["user_birthday"])
    response = _silent(Client(), app, ["openid", "profile"])
    assert response.status_code == 302
    assert response["Location"].startswith(REDIRECT_URI + "?")
    params = redirect_params(response["Location"])
    assert params["error"] == "login_required"
    assert params["state"] == "quiet"
    assert "code" not in params


def test_new_permission_gives_consent_required_and_grants_nothing(make_person):
    person = make_person()
    app, _ = make_app(permissions=["user_birthday"])
    client = Client()
    client.force_login(person)
    response = _silent(client, app, ["openid", "user_birthday"])
    assert response.status_code == 302
    params = redirect_params(response["Location"])
    assert params["error"] == "consent_required"
    assert params["state"] == "quiet"
    assert not person.consents.exists()


def test_everything_already_granted_returns_a_code_silently(make_person):
    person = make_person()
    app, _ = make_app(permissions=["user_birthday"])
    client = Client()
    obtain_token(client, person, app, ["openid", "user_birthday"])
    response = _silent(client, app, ["openid", "user_birthday"])
    assert response.status_code == 302
    params = redirect_params(response["Location"])
    assert "error" not in params
    assert params["code"]


def test_unknown_redirect_uri_with_prompt_none_is_not_redirected():
    app, _ = make_app()
    response = _silent(Client(), app, ["openid"], redirect_uri="https://evil.example/cb")
    assert response.status_code == 400
    assert "evil.example" not in response.get("Location", "")
