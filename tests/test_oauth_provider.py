"""The authorization code flow in-process: tokens derive from the consent, are stored
hashed, carry pairwise ids, and die with the consent."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from jwcrypto import jwk, jwt

from consentry.grants.actions import do_revoke_consent, do_revoke_permission
from consentry.grants.models import Consent
from consentry.oauth.models import AccessToken, AppStatus, Grant, RefreshToken
from consentry.oauth.pairwise import app_scoped_id
from consentry.oauth.tokens import access_token_for
from consentry.oauth.validators import relay_address
from tests.oauth_flow import (
    authorize_url,
    cheap_argon2,  # noqa: F401
    make_app,
    obtain_code,
    obtain_token,
    pkce_pair,
    redirect_params,
    refresh,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_code_flow_issues_tokens_tied_to_the_consent(make_person):
    person = make_person(name="Ada")
    app, _ = make_app(permissions=["user_birthday"], purposes={"user_birthday": "Calendar"})
    tokens = obtain_token(Client(), person, app, ["openid", "profile", "user_birthday"])
    assert set(tokens["scope"].split()) == {"openid", "profile", "user_birthday"}
    token = access_token_for(tokens["access_token"])
    assert token is not None
    consent = Consent.objects.get(person=person, application=app)
    assert token.consent_id == consent.pk
    assert consent.active_scopes() == {"openid", "profile", "user_birthday"}
    assert consent.expires_at - consent.last_used_at == timedelta(days=90)
    shown = consent.permissions.get(permission="user_birthday")
    assert shown.purpose_shown == "Calendar"


def test_tokens_and_codes_are_stored_only_as_hashes(make_person):
    person = make_person()
    app, _ = make_app()
    client = Client()
    code, _verifier = obtain_code(client, person, app, ["openid", "profile"])
    grant = Grant.objects.get(application=app)
    assert grant.code != code
    assert code not in grant.code
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    for model in (AccessToken, RefreshToken):
        for row in model.objects.filter(application=app):
            assert row.token == ""
            assert row.token_checksum
    stored = json.dumps(list(AccessToken.objects.values()), default=str)
    assert tokens["access_token"] not in stored
    assert tokens["refresh_token"] not in json.dumps(
        list(RefreshToken.objects.values()), default=str
    )


def test_id_token_is_rs256_with_a_pairwise_subject(make_person):
    person = make_person(name="Grace")
    app, _ = make_app()
    other, _ = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    jwks = client.get("/oauth/jwks/").json()
    keyset = jwk.JWKSet.from_json(json.dumps(jwks))
    claims = json.loads(jwt.JWT(jwt=tokens["id_token"], key=keyset).claims)
    assert jwt.JWT(jwt=tokens["id_token"], key=keyset).token.jose_header["alg"] == "RS256"
    assert claims["sub"] == app_scoped_id(app.pk, person.pk)
    assert claims["sub"] != str(person.pk)
    assert claims["sub"] != app_scoped_id(other.pk, person.pk)
    assert claims["aud"] == app.client_id
    assert claims["name"] == "Grace"
    assert "email" not in claims


def test_userinfo_gives_basic_login_only_app_scoped_id_name_and_picture(make_person):
    person = make_person(name="Lin", picture="https://img.example.test/lin.png")
    app, _ = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    info = client.get("/oauth/userinfo/", **bearer(tokens["access_token"])).json()
    assert info == {
        "sub": app_scoped_id(app.pk, person.pk),
        "name": "Lin",
        "picture": "https://img.example.test/lin.png",
    }


def test_email_is_the_real_address_or_a_per_app_relay_as_chosen(make_person):
    real = make_person(email="real@example.test")
    relayed = make_person(email="hidden@example.test")
    app, _ = make_app()
    client = Client()
    scopes = ["openid", "profile", "email"]
    info = client.get(
        "/oauth/userinfo/", **bearer(obtain_token(client, real, app, scopes)["access_token"])
    ).json()
    assert info["email"] == "real@example.test"
    client = Client()
    token = obtain_token(client, relayed, app, scopes, email_choice="relay")["access_token"]
    info = client.get("/oauth/userinfo/", **bearer(token)).json()
    assert info["email"] == relay_address(app.pk, relayed.pk)
    assert "hidden" not in info["email"]
    assert Consent.objects.get(person=relayed, application=app).email_choice == "relay"


def test_unticked_permission_is_neither_granted_nor_in_the_token(make_person):
    person = make_person()
    app, _ = make_app(permissions=["user_birthday", "user_hometown"])
    scopes = ["openid", "profile", "user_birthday", "user_hometown"]
    tokens = obtain_token(Client(), person, app, scopes, untick=["user_hometown"])
    assert set(tokens["scope"].split()) == {"openid", "profile", "user_birthday"}
    consent = Consent.objects.get(person=person, application=app)
    assert consent.active_scopes() == {"openid", "profile", "user_birthday"}


def test_basic_login_cannot_be_unticked(make_person):
    person = make_person()
    app, _ = make_app()
    tokens = obtain_token(Client(), person, app, ["openid", "profile"], untick=["profile"])
    assert set(tokens["scope"].split()) == {"openid", "profile"}


def test_incremental_consent_shows_only_the_new_permission(make_person):
    person = make_person()
    app, _ = make_app(permissions=["user_birthday"])
    client = Client()
    obtain_token(client, person, app, ["openid", "profile"])
    _verifier, challenge = pkce_pair()
    page = client.get(authorize_url(app, ["openid", "profile", "user_birthday"], challenge))
    assert page.status_code == 200
    rows = [row.permission for row in page.context["rows"]]
    assert rows == ["user_birthday"]
    assert page.context["incremental"] is True
    tokens = obtain_token(client, person, app, ["openid", "profile", "user_birthday"])
    assert "user_birthday" in tokens["scope"].split()


def test_nothing_new_asked_skips_the_consent_screen(make_person):
    person = make_person()
    app, _ = make_app()
    client = Client()
    obtain_token(client, person, app, ["openid", "profile"])
    _verifier, challenge = pkce_pair()
    response = client.get(authorize_url(app, ["openid", "profile"], challenge, state="s1"))
    assert response.status_code == 302
    params = redirect_params(response["Location"])
    assert params["state"] == "s1"
    assert "code" in params


def test_deny_returns_access_denied_with_the_state(make_person):
    person = make_person()
    app, _ = make_app()
    client = Client()
    client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["openid", "profile"], challenge, state="xyz")
    response = client.post(url, {"decision": "deny"})
    assert response.status_code == 302
    params = redirect_params(response["Location"])
    assert params["error"] == "access_denied"
    assert params["state"] == "xyz"
    assert not Consent.objects.filter(person=person).exists()


def test_unticking_everything_asked_is_a_denial(make_person):
    person = make_person()
    app, _ = make_app(permissions=["user_birthday"])
    client = Client()
    client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["user_birthday"], challenge)
    response = client.post(url, {"decision": "allow"})
    assert redirect_params(response["Location"])["error"] == "access_denied"


def test_revoking_the_consent_kills_its_tokens_at_once(make_person):
    person = make_person()
    app, secret = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    assert client.get("/oauth/userinfo/", **bearer(tokens["access_token"])).status_code == 200
    do_revoke_consent(Consent.objects.get(person=person, application=app))
    assert access_token_for(tokens["access_token"]) is None
    assert client.get("/oauth/userinfo/", **bearer(tokens["access_token"])).status_code == 401
    assert refresh(client, app, tokens["refresh_token"], secret).status_code == 400


def test_revoking_one_permission_removes_it_from_live_and_refreshed_tokens(make_person):
    person = make_person()
    app, secret = make_app(permissions=["user_birthday"])
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile", "user_birthday"])
    consent = Consent.objects.get(person=person, application=app)
    do_revoke_permission(consent, "user_birthday")
    token = access_token_for(tokens["access_token"])
    assert token is not None
    assert "user_birthday" not in token.scope.split()
    refreshed = refresh(client, app, tokens["refresh_token"], secret).json()
    assert set(refreshed["scope"].split()) == {"openid", "profile"}


def test_expired_consent_invalidates_tokens_and_refresh(make_person):
    person = make_person()
    app, secret = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    Consent.objects.filter(person=person).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert access_token_for(tokens["access_token"]) is None
    assert refresh(client, app, tokens["refresh_token"], secret).status_code == 400


def test_refresh_rotates_and_bumps_consent_use(make_person):
    person = make_person()
    app, secret = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    Consent.objects.filter(person=person).update(
        last_used_at=timezone.now() - timedelta(days=10),
        expires_at=timezone.now() + timedelta(days=80),
    )
    new = refresh(client, app, tokens["refresh_token"], secret).json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert access_token_for(tokens["access_token"]) is None
    assert access_token_for(new["access_token"]) is not None
    consent = Consent.objects.get(person=person)
    assert consent.expires_at > timezone.now() + timedelta(days=89)


def test_development_app_serves_only_its_members(make_person):
    member = make_person()
    stranger = make_person()
    app, _ = make_app(live=False, members=[member])
    obtain_token(Client(), member, app, ["openid", "profile"])
    client = Client()
    client.force_login(stranger, backend="django.contrib.auth.backends.ModelBackend")
    _verifier, challenge = pkce_pair()
    response = client.get(authorize_url(app, ["openid", "profile"], challenge))
    assert response.status_code == 400
    assert "Location" not in response


@pytest.mark.parametrize("status", [AppStatus.SUSPENDED, AppStatus.BANNED])
def test_suspended_or_banned_app_can_neither_authorize_nor_use_tokens(make_person, status):
    person = make_person()
    app, _ = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    app.status = status
    app.save(update_fields=["status"])
    assert access_token_for(tokens["access_token"]) is None
    _verifier, challenge = pkce_pair()
    assert client.get(authorize_url(app, ["openid", "profile"], challenge)).status_code == 400


def test_unapproved_review_permission_is_refused_as_invalid_scope(make_person):
    person = make_person()
    app, _ = make_app(permissions=[])
    client = Client()
    client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    _verifier, challenge = pkce_pair()
    response = client.get(authorize_url(app, ["openid", "user_birthday"], challenge))
    assert redirect_params(response["Location"])["error"] == "invalid_scope"


def test_agreement_permission_needs_the_signed_agreement(make_person):
    person = make_person()
    app, _ = make_app(permissions=["user_posts"], agreement=False)
    client = Client()
    client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    _verifier, challenge = pkce_pair()
    response = client.get(authorize_url(app, ["openid", "user_posts"], challenge))
    assert redirect_params(response["Location"])["error"] == "invalid_scope"


def test_discovery_documents_advertise_only_what_is_accepted(client):
    oidc = client.get("/.well-known/openid-configuration").json()
    assert oidc["response_types_supported"] == ["code"]
    assert oidc["subject_types_supported"] == ["pairwise"]
    assert oidc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert oidc["authorization_endpoint"].endswith("/oauth/authorize/")
    assert oidc["end_session_endpoint"].endswith("/oauth/logout/")
    rfc8414 = client.get("/.well-known/oauth-authorization-server").json()
    assert rfc8414["issuer"] == oidc["issuer"]
    assert rfc8414["code_challenge_methods_supported"] == ["S256"]
    assert set(rfc8414["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert rfc8414["introspection_endpoint"].endswith("/oauth/introspect/")
    assert rfc8414["revocation_endpoint"].endswith("/oauth/revoke/")


def test_consent_page_cannot_be_framed(make_person):
    person = make_person()
    app, _ = make_app()
    client = Client()
    client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    _verifier, challenge = pkce_pair()
    page = client.get(authorize_url(app, ["openid", "profile"], challenge))
    assert page.status_code == 200
    assert page["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]


def test_rp_initiated_logout_signs_the_person_out(make_person):
    person = make_person()
    app, _ = make_app()
    client = Client()
    tokens = obtain_token(client, person, app, ["openid", "profile"])
    params = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "https://app.example.test/callback",
        "client_id": app.client_id,
    }
    # The person is asked first (OpenID Connect RP-Initiated Logout 1.0 section 2) ...
    page = client.get("/oauth/logout/", params)
    assert page.status_code == 200
    assert 'id="logout-form"' in page.content.decode()
    assert "_auth_user_id" in client.session
    # ... and signed out only when they confirm.
    response = client.post("/oauth/logout/", {**params, "allow": "1"})
    assert response.status_code == 302
    assert response["Location"].startswith("https://app.example.test/callback")
    assert "_auth_user_id" not in client.session
    # Signing out is not revoking consent: the app's tokens still work.
    assert access_token_for(tokens["access_token"]) is not None
