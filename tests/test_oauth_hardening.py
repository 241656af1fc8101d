"""Defects found when the provider was attacked from outside (issue: hardening), each
attempted again and refused. Bad input (NUL bytes, huge values) is in test_bad_input.py;
the throttle shared by two server processes in test_client_throttle_redis.py."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from consentry.oauth.tokens import access_token_for
from tests.oauth_flow import (
    authorize_url,
    basic_auth,
    cheap_argon2,  # noqa: F401
    exchange_code,
    make_app,
    obtain_code,
    obtain_token,
    pkce_pair,
    redirect_params,
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


# --- 1. wrong secrets are throttled per (client, address), never a lockout ----------------

GUESSER = "203.0.113.9"
REAL = "198.51.100.7"


def _token_call(client: Client, app, secret: str, address: str):
    """A refresh with a bogus refresh token: 400 invalid_grant once the client has
    authenticated, 401 invalid_client when it has not, 429 while it is delayed."""
    return client.post(
        "/oauth/token/",
        {"grant_type": "refresh_token", "refresh_token": "not-a-refresh-token"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        REMOTE_ADDR=address,
    )


def test_wrong_secrets_from_one_address_do_not_lock_the_app_out():
    app, secret = make_app()
    client = Client()
    for i in range(10):
        assert _token_call(client, app, f"guess-{i}", GUESSER).status_code in (401, 429)
    for endpoint_call in (
        lambda: _token_call(client, app, secret, REAL),
        lambda: _introspect(client, app, secret, "unknown-token"),
    ):
        response = endpoint_call()
        assert response.status_code in (200, 400), response.content
    assert _token_call(client, app, secret, REAL).json()["error"] == "invalid_grant"


def test_repeated_wrong_secrets_are_delayed_with_429_and_retry_after():
    app, _secret = make_app()
    client = Client()
    statuses = [_token_call(client, app, f"guess-{i}", GUESSER).status_code for i in range(6)]
    assert statuses == [401] * 6
    delayed = _token_call(client, app, "guess-7", GUESSER)
    assert delayed.status_code == 429
    assert delayed["Content-Type"] == "application/json"
    assert int(delayed["Retry-After"]) >= 1
    assert delayed.json()["error"] == "slow_down"
    # Introspection and revocation share the throttle.
    seen = client.post(
        "/oauth/introspect/",
        {"token": "x"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, "guess"),
        REMOTE_ADDR=GUESSER,
    )
    assert seen.status_code == 429
    assert "Retry-After" in seen
    revoked = client.post(
        "/oauth/revoke/",
        {"token": "x"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, "guess"),
        REMOTE_ADDR=GUESSER,
    )
    assert revoked.status_code == 429
    assert "Retry-After" in revoked


def test_delays_grow_and_are_capped(settings):
    from consentry.oauth.throttle import delay_after

    free = settings.CLIENT_AUTH_FREE_FAILURES
    delays = [delay_after(n) for n in range(1, free + 12)]
    assert delays[:free] == [0] * free
    grown = delays[free:]
    assert grown == sorted(grown)
    assert grown[:2] == [1, 2]
    assert delay_after(10_000) == settings.CLIENT_AUTH_MAX_DELAY_SECONDS


def test_a_correct_secret_clears_the_failures_of_its_address():
    from consentry.oauth import throttle

    app, secret = make_app()
    client = Client()
    for i in range(4):
        _token_call(client, app, f"guess-{i}", GUESSER)
    assert _token_call(client, app, secret, GUESSER).status_code == 400
    # Counting starts again: five more failures are still plain 401s.
    assert [_token_call(client, app, f"g{i}", GUESSER).status_code for i in range(5)] == [401] * 5
    assert throttle.retry_after(app.client_id, GUESSER) is None


# --- 6. the right challenge for Basic; revoking another client's token is refused -------


@pytest.mark.parametrize("path", ["/oauth/token/", "/oauth/revoke/", "/oauth/introspect/"])
def test_failed_basic_authentication_is_challenged_with_basic(path):
    app, _secret = make_app()
    response = Client().post(
        path,
        {"grant_type": "refresh_token", "refresh_token": "x", "token": "x"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"),
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert response.json()["error"] == "invalid_client"


def test_revoking_another_clients_token_is_refused(make_person):
    person = make_person()
    app_a, _secret_a = make_app()
    app_b, secret_b = make_app()
    client = Client()
    tokens = obtain_token(client, person, app_a, ["openid", "profile"])
    for token in (tokens["access_token"], tokens["refresh_token"]):
        response = client.post(
            "/oauth/revoke/",
            {"token": token},
            HTTP_AUTHORIZATION=basic_auth(app_b.client_id, secret_b),
        )
        assert response.status_code == 400
        assert response.json()["error"] == "unauthorized_client"
    assert access_token_for(tokens["access_token"]) is not None
    # An unknown token is still 200 (RFC 7009 2.2), and the owner can revoke its own.
    unknown = client.post(
        "/oauth/revoke/",
        {"token": "nope"},
        HTTP_AUTHORIZATION=basic_auth(app_b.client_id, secret_b),
    )
    assert unknown.status_code == 200
    own = client.post(
        "/oauth/revoke/",
        {"token": tokens["access_token"]},
        HTTP_AUTHORIZATION=basic_auth(app_a.client_id, app_a.plain_client_secret),
    )
    assert own.status_code == 200
    assert access_token_for(tokens["access_token"]) is None


# --- 3. RFC 9207 `iss` on every redirect back to the app, errors included ----------------


def _issuer(client: Client) -> str:
    return str(client.get("/.well-known/openid-configuration").json()["issuer"])


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("deny", "access_denied"),
        ("bad_scope", "invalid_scope"),
        ("no_pkce", "invalid_request"),
        ("prompt_none_signed_out", "login_required"),
        ("prompt_none_no_consent", "consent_required"),
        ("implicit", "unsupported_response_type"),
    ],
)
def test_error_redirects_name_the_issuer(make_person, case, error):
    person = make_person()
    app, _ = make_app()
    client = Client()
    if case != "prompt_none_signed_out":
        client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    _verifier, challenge = pkce_pair()
    extra = {
        "bad_scope": {"scope": "openid no_such_permission"},
        "no_pkce": {"code_challenge": ""},
        "prompt_none_signed_out": {"prompt": "none"},
        "prompt_none_no_consent": {"prompt": "none"},
        "implicit": {"response_type": "token"},
    }.get(case, {})
    url = authorize_url(app, ["openid", "profile"], challenge, **extra)
    response = client.post(url, {"decision": "deny"}) if case == "deny" else client.get(url)
    assert response.status_code == 302, response.content[:300]
    params = redirect_params(response["Location"])
    assert params["error"] in (error, "unauthorized_client")
    assert params["iss"] == _issuer(client)
    assert parse_qs(urlsplit(response["Location"]).query)["iss"] == [params["iss"]]


# --- 4. no loopback port latitude for confidential clients ------------------------------


def test_loopback_redirect_uri_must_match_its_port(make_person):
    person = make_person()
    app, _ = make_app(redirect_uri="http://127.0.0.1:9/cb")
    client = Client()
    client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    _verifier, challenge = pkce_pair()
    for other in ("http://127.0.0.1:10/cb", "http://127.0.0.1/cb", "http://[::1]:9/cb"):
        url = authorize_url(app, ["openid"], challenge, redirect_uri=other)
        response = client.post(url, {"decision": "allow"})
        assert response.status_code == 400
        assert "Location" not in response
    url = authorize_url(app, ["openid"], challenge, redirect_uri="http://127.0.0.1:9/cb")
    response = client.post(url, {"decision": "allow"})
    assert response.status_code == 302
    assert response["Location"].startswith("http://127.0.0.1:9/cb?")


def test_post_logout_redirect_uri_must_match_exactly_too():
    app, _ = make_app(redirect_uri="http://127.0.0.1:9/cb")
    assert app.post_logout_redirect_uri_allowed("http://127.0.0.1:9/cb")
    assert not app.post_logout_redirect_uri_allowed("http://127.0.0.1:10/cb")


# --- 6, 9. RP-initiated logout: ask first; an unknown client is a 400, not a 500 --------


def test_logout_with_a_valid_id_token_hint_asks_before_signing_out(make_person):
    person = make_person()
    app, _ = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    page = client.get("/oauth/logout/", {"id_token_hint": tokens["id_token"]})
    assert page.status_code == 200
    assert "_auth_user_id" in client.session
    stay = client.post("/oauth/logout/", {"id_token_hint": tokens["id_token"]})
    assert stay.status_code == 302
    assert stay["Location"] == "/"
    assert "_auth_user_id" in client.session
    leave = client.post("/oauth/logout/", {"id_token_hint": tokens["id_token"], "allow": "1"})
    assert leave.status_code == 302
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "nope"},
        {"client_id": "nope", "post_logout_redirect_uri": "https://app.example.test/callback"},
        {"id_token_hint": "not.a.jwt"},
        {"id_token_hint": "garbage"},
    ],
)
def test_logout_with_an_unknown_client_or_bad_hint_is_a_400(make_person, params):
    client = Client()
    client.force_login(make_person(), backend="django.contrib.auth.backends.ModelBackend")
    response = client.get("/oauth/logout/", params)
    assert response.status_code == 400
    assert "_auth_user_id" in client.session


# --- 5. email_verified is reported truthfully --------------------------------------------


@pytest.mark.parametrize("email_choice", ["real", "relay"])
def test_email_verified_reports_whether_the_address_was_verified(make_person, email_choice):
    from django.utils import timezone

    unverified = make_person()
    verified = make_person(email_verified_at=timezone.now())
    app, _ = make_app()
    for person, expected in ((unverified, False), (verified, True)):
        client = Client()
        tokens = obtain_token(client, person, app, ["openid", "email"], email_choice=email_choice)
        info = _userinfo(client, tokens["access_token"]).json()
        assert info["email_verified"] is expected
        assert _jwt_claims(tokens["id_token"])["email_verified"] is expected


def test_imported_people_are_unverified_unless_the_import_says_when(tmp_path):
    from django.core.management import call_command

    from consentry.people.models import Person

    path = tmp_path / "people.jsonl"
    path.write_text(
        '{"id": "a", "email": "a@example.test", "name": "A"}\n'
        '{"id": "b", "email": "b@example.test", "name": "B", '
        '"email_verified_at": "2020-01-02T03:04:05Z"}\n',
        encoding="utf-8",
    )
    call_command("import", str(path))
    assert Person.objects.get(external_id="a").email_verified_at is None
    b = Person.objects.get(external_id="b")
    assert b.email_verified_at is not None
    assert b.email_verified_at.isoformat() == "2020-01-02T03:04:05+00:00"


# --- 7. ID token and userinfo claims are disclosures in the ledger -------------------------


def _jwt_claims(token: str) -> dict:
    import base64
    import json

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


CLAIM_FIELD = {"sub": "id", "name": "name", "picture": "picture", "email": "email"}


def test_sign_in_ledger_entries_equal_what_the_client_received(make_person):
    from consentry.ledger.api import history_for_person

    person = make_person(name="Ada", picture="https://p.example.test/ada.jpg")
    app, secret = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile", "email"])
    id_claims = _jwt_claims(tokens["id_token"])
    info = _userinfo(client, tokens["access_token"]).json()
    refreshed = refresh(client, app, tokens["refresh_token"], secret).json()
    refreshed_claims = _jwt_claims(refreshed["id_token"])

    received = [
        ("oidc:id_token", {CLAIM_FIELD[k] for k in id_claims if k in CLAIM_FIELD}),
        ("oidc:userinfo", {CLAIM_FIELD[k] for k in info if k in CLAIM_FIELD}),
        ("oidc:id_token", {CLAIM_FIELD[k] for k in refreshed_claims if k in CLAIM_FIELD}),
    ]
    assert received[0][1] == {"id", "name", "picture", "email"}
    ledgered = [
        (d.endpoint, set(d.fields))
        for d in sorted(history_for_person(person.pk), key=lambda d: d.index)
        if d.app_id == app.pk
    ]
    assert ledgered == received
    assert all(d.actor_id == person.pk for d in history_for_person(person.pk) if d.app_id == app.pk)


def test_openid_only_sign_in_ledgers_the_id_alone(make_person):
    from consentry.ledger.api import history_for_person

    person = make_person()
    app, _ = make_app()
    obtain_token(Client(), person, app, ["openid"])
    assert [(d.endpoint, d.fields) for d in history_for_person(person.pk)] == [
        ("oidc:id_token", ["id"])
    ]
