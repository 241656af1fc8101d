"""Defects found when the provider was attacked from outside (issue: hardening), each
attempted again and refused. Bad input (NUL bytes, huge values) is in test_bad_input.py;
the throttle shared by two server processes in test_client_throttle_redis.py."""

from __future__ import annotations

import pytest
from django.test import Client

from consentry.oauth.tokens import access_token_for
from tests.oauth_flow import (
    basic_auth,
    cheap_argon2,  # noqa: F401
    exchange_code,
    make_app,
    obtain_code,
    obtain_token,
    refresh,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]


def _userinfo(client: Client, access_token: str):
    return client.get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {access_token}")


def _introspect(client: Client, app, secret: str, token: str):
    return client.post(
        "/oauth/introspect/", {"token": token}, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    )


# --- 2. a deactivated person's tokens, or a lost role, stop working everywhere ------------


def _assert_tokens_dead(client: Client, app, secret: str, tokens: dict) -> None:
    assert access_token_for(tokens["access_token"]) is None
    me = client.get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert me.status_code == 401
    assert _userinfo(client, tokens["access_token"]).status_code == 401
    assert _introspect(client, app, secret, tokens["access_token"]).json() == {"active": False}
    again = refresh(client, app, tokens["refresh_token"], secret)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_deactivated_persons_tokens_are_refused_by_every_endpoint(make_person):
    person = make_person()
    app, secret = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    assert _userinfo(client, tokens["access_token"]).status_code == 200
    person.is_active = False
    person.save(update_fields=["is_active"])
    _assert_tokens_dead(Client(), app, secret, tokens)


def test_tokens_of_a_development_app_die_with_the_persons_role(make_person):
    person = make_person()
    app, secret = make_app(live=False, members=[person])
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    assert _introspect(client, app, secret, tokens["access_token"]).json()["active"] is True
    app.members.remove(person)
    _assert_tokens_dead(Client(), app, secret, tokens)


def test_code_of_a_deactivated_person_cannot_be_exchanged(make_person):
    person = make_person()
    app, secret = make_app()
    client = Client()
    code, verifier = obtain_code(client, person, app, ["openid", "profile"])
    person.is_active = False
    person.save(update_fields=["is_active"])
    response = exchange_code(Client(), app, code, verifier, secret)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
