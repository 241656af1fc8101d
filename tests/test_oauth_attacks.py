"""The RFC 9700 attacks Consentry defends against, each one attempted and refused."""

from __future__ import annotations

import pytest
from django.test import Client

from consentry.oauth.models import AccessToken, RefreshToken
from consentry.oauth.tokens import access_token_for
from tests.oauth_flow import (
    REDIRECT_URI,
    TOKEN_PATH,
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
LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"


@pytest.fixture
def signed_in(make_person):
    person = make_person()
    client = Client()
    client.force_login(person, backend=LOGIN_BACKEND)
    return client, person


def test_missing_pkce_is_refused(signed_in):
    client, _ = signed_in
    app, _ = make_app()
    url = authorize_url(app, ["openid"], "x" * 43)
    url = url.replace("code_challenge=", "ignored=").replace("code_challenge_method=", "m=")
    params = redirect_params(client.get(url)["Location"])
    assert params["error"] == "invalid_request"
    assert "code" not in params


def test_plain_pkce_is_refused(signed_in):
    client, _ = signed_in
    app, _ = make_app()
    verifier, _challenge = pkce_pair()
    url = authorize_url(app, ["openid"], verifier, code_challenge_method="plain")
    params = redirect_params(client.get(url)["Location"])
    assert params["error"] == "invalid_request"


def test_pkce_without_a_method_is_not_taken_as_plain(signed_in):
    client, _ = signed_in
    app, _ = make_app()
    verifier, _challenge = pkce_pair()
    url = authorize_url(app, ["openid"], verifier).replace("&code_challenge_method=S256", "")
    params = redirect_params(client.get(url)["Location"])
    assert params["error"] == "invalid_request"


def test_wrong_code_verifier_is_refused(make_person):
    person = make_person()
    app, secret = make_app()
    client = Client()
    code, _verifier = obtain_code(client, person, app, ["openid", "profile"])
    other_verifier, _ = pkce_pair()
    response = exchange_code(client, app, code, other_verifier, secret)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example.test/callback/",
        "https://app.example.test/callback/../evil",
        "https://app.example.test/callbackx",
        "https://app.example.test/callback?next=https://evil.test",
        "https://app.example.test/callback#frag",
        "https://app.example.test.evil.test/callback",
        "https://evil.test/callback",
        "http://app.example.test/callback",
        "https://app.example.test:444/callback",
        "https://user@app.example.test/callback",
        "https://APP.example.test/Callback",
    ],
)
def test_redirect_uri_must_match_exactly(signed_in, redirect_uri):
    """A mismatching redirect URI gets an error page here, never a redirect."""
    client, _ = signed_in
    app, _ = make_app()
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["openid"], challenge, redirect_uri=redirect_uri)
    response = client.get(url)
    assert response.status_code == 400
    assert "Location" not in response
    response = client.post(url, {"decision": "allow"})
    assert response.status_code == 400
    assert "Location" not in response


def test_redirect_uri_at_token_endpoint_must_match_the_authorization(make_person):
    person = make_person()
    app, secret = make_app(redirect_uri=f"{REDIRECT_URI} https://app.example.test/other")
    client = Client()
    code, verifier = obtain_code(client, person, app, ["openid"])
    response = client.post(
        TOKEN_PATH,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://app.example.test/other",
            "code_verifier": verifier,
        },
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 400


def test_code_replay_fails_and_revokes_the_first_tokens(make_person):
    person = make_person()
    app, secret = make_app()
    client = Client()
    code, verifier = obtain_code(client, person, app, ["openid", "profile"])
    first = exchange_code(client, app, code, verifier, secret)
    assert first.status_code == 200
    tokens = first.json()
    assert access_token_for(tokens["access_token"]) is not None
    replay = exchange_code(client, app, code, verifier, secret)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert access_token_for(tokens["access_token"]) is None
    assert refresh(client, app, tokens["refresh_token"], secret).status_code == 400


def test_refresh_token_reuse_revokes_the_whole_family(make_person):
    person = make_person()
    app, secret = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    second = refresh(client, app, tokens["refresh_token"], secret).json()
    reuse = refresh(client, app, tokens["refresh_token"], secret)
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # The legitimate client's newer tokens die too: the family is compromised.
    assert access_token_for(second["access_token"]) is None
    assert refresh(client, app, second["refresh_token"], secret).status_code == 400
    assert not AccessToken.objects.filter(application=app).exists()
    assert not RefreshToken.objects.filter(application=app, revoked__isnull=True).exists()


def test_refresh_cannot_escalate_scope(make_person):
    person = make_person()
    app, secret = make_app(permissions=["user_birthday"])
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    response = client.post(
        TOKEN_PATH,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid profile user_birthday",
        },
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_refresh_can_narrow_scope(make_person):
    person = make_person()
    app, secret = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    response = client.post(
        TOKEN_PATH,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid",
        },
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.json()["scope"] == "openid"


def test_consent_form_requires_the_csrf_token(make_person):
    person = make_person()
    app, _ = make_app()
    client = Client(enforce_csrf_checks=True)
    client.force_login(person, backend=LOGIN_BACKEND)
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["openid", "profile"], challenge)
    assert client.get(url).status_code == 200
    forged = client.post(url, {"decision": "allow"})
    assert forged.status_code == 403
    token = client.cookies["csrftoken"].value
    genuine = client.post(url, {"decision": "allow", "csrfmiddlewaretoken": token})
    assert genuine.status_code == 302


def test_state_is_returned_unchanged(signed_in):
    client, _ = signed_in
    app, _ = make_app()
    _verifier, challenge = pkce_pair()
    state = "a b&c=d/é"
    url = authorize_url(app, ["openid"], challenge, state=state)
    response = client.post(url, {"decision": "allow"})
    assert redirect_params(response["Location"])["state"] == state


def test_authorization_response_names_the_issuer(signed_in):
    """RFC 9207 `iss` lets the client detect mix-up attacks (RFC 9700 4.4)."""
    client, _ = signed_in
    app, _ = make_app()
    _verifier, challenge = pkce_pair()
    response = client.post(authorize_url(app, ["openid"], challenge), {"decision": "allow"})
    issuer = client.get("/.well-known/openid-configuration").json()["issuer"]
    assert redirect_params(response["Location"])["iss"] == issuer


def test_client_secret_guessing_is_slowed_down_without_locking_the_client_out(make_person):
    person = make_person()
    app, secret = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    guesser = {"REMOTE_ADDR": "203.0.113.66"}
    statuses = [
        client.post(
            TOKEN_PATH,
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            HTTP_AUTHORIZATION=basic_auth(app.client_id, f"guess-{i}"),
            **guesser,
        ).status_code
        for i in range(10)
    ]
    # The first failures are plain 401s; then the guesser is delayed (429 + Retry-After).
    assert statuses[:6] == [401] * 6
    assert 429 in statuses[6:]
    # The app itself, from its own address, is not affected at all.
    assert refresh(client, app, tokens["refresh_token"], secret).status_code == 200


def test_token_of_app_a_is_useless_to_app_b(make_person):
    person = make_person()
    app_a, secret_a = make_app()
    app_b, secret_b = make_app()
    client = Client()
    code, verifier = obtain_code(client, person, app_a, ["openid", "profile"])
    # B cannot exchange A's code ...
    assert exchange_code(client, app_b, code, verifier, secret_b).status_code == 400
    tokens = exchange_code(client, app_a, code, verifier, secret_a).json()
    # ... nor refresh A's refresh token ...
    assert refresh(client, app_b, tokens["refresh_token"], secret_b).status_code == 400
    # ... nor learn anything about A's token by introspection ...
    seen = client.post(
        "/oauth/introspect/",
        {"token": tokens["access_token"]},
        HTTP_AUTHORIZATION=basic_auth(app_b.client_id, secret_b),
    )
    assert seen.json() == {"active": False}
    # ... nor revoke it.
    client.post(
        "/oauth/revoke/",
        {"token": tokens["access_token"]},
        HTTP_AUTHORIZATION=basic_auth(app_b.client_id, secret_b),
    )
    assert access_token_for(tokens["access_token"]) is not None
    # And A's refresh token still works for A: B's attempts did not burn it.
    assert refresh(client, app_a, tokens["refresh_token"], secret_a).status_code == 200


@pytest.mark.parametrize("response_type", ["token", "id_token", "id_token token", "code token"])
def test_implicit_and_hybrid_response_types_are_refused(signed_in, response_type):
    client, _ = signed_in
    app, _ = make_app()
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["openid"], challenge, response_type=response_type)
    response = client.get(url)
    location = response.get("Location", "")
    assert "access_token" not in location
    assert "id_token=" not in location
    assert response.status_code in (302, 400)
    if response.status_code == 302:
        error = redirect_params(location)["error"]
        assert error in ("unsupported_response_type", "unauthorized_client")


@pytest.mark.parametrize("grant_type", ["password", "client_credentials"])
def test_password_and_client_credentials_grants_are_refused(make_person, grant_type):
    person = make_person(email="victim@example.test", password="pw-123456789")
    app, secret = make_app()
    response = Client().post(
        TOKEN_PATH,
        {"grant_type": grant_type, "username": person.email, "password": "pw-123456789"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_access_token_in_the_query_string_is_refused(make_person):
    person = make_person()
    app, _ = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    response = client.get("/oauth/userinfo/", {"access_token": tokens["access_token"]})
    assert response.status_code == 400
