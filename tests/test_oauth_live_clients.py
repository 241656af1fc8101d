"""Full flows against a live server with OAuth client libraries written by others:
Authlib's requests client and requests-oauth2client, both configured from discovery."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from jwcrypto import jwk, jwt
from requests_oauth2client import AuthorizationRequest, AuthorizationResponseError, OAuth2Client

from consentry.oauth.pairwise import app_scoped_id
from tests.oauth_flow import REDIRECT_URI, cheap_argon2, make_app  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("cheap_argon2")]
PASSWORD = "correct horse battery staple"


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def browser_authorize(
    authorize_url: str, email: str, *, untick: tuple[str, ...] = (), decision: str = "allow"
) -> str:
    """Play the person's browser: follow to the login page, sign in, allow on the consent
    screen. Returns the redirect back to the app (never followed: it is the app's URL)."""
    browser = requests.Session()
    page = browser.get(authorize_url, timeout=10)
    assert "/accounts/login/" in page.url
    response = browser.post(
        page.url,
        data={
            "csrfmiddlewaretoken": csrf_token(page.text),
            "username": email,
            "password": PASSWORD,
            "next": re.search(r'name="next" value="([^"]*)"', page.text).group(1),  # type: ignore[union-attr]
        },
        headers={"Referer": page.url},
        timeout=10,
    )
    assert response.status_code == 200, response.text[:800]
    assert 'id="consent-form"' in response.text, response.text[:800]
    permissions = re.findall(r'name="permission" value="([^"]+)"', response.text)
    consent = browser.post(
        response.url,
        data={
            "csrfmiddlewaretoken": csrf_token(response.text),
            "decision": decision,
            "permission": [p for p in permissions if p not in untick],
        },
        headers={"Referer": response.url},
        allow_redirects=False,
        timeout=10,
    )
    assert consent.status_code == 302, consent.text[:500]
    location = consent.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return str(location)


@pytest.fixture
def person(make_person):
    return make_person(name="Ada Lovelace", email="ada@example.test", password=PASSWORD)


def test_authlib_client_full_flow(live_server, person, monkeypatch):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # live_server speaks plain HTTP
    app, secret = make_app(name="Authlib app", permissions=["user_birthday"])
    meta: dict[str, Any] = requests.get(
        live_server.url + "/.well-known/openid-configuration", timeout=10
    ).json()
    assert meta["issuer"] == live_server.url
    session = OAuth2Session(
        client_id=app.client_id,
        client_secret=secret,
        scope="openid profile user_birthday",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = "v" * 20 + "-authlib-verifier-" + "x" * 30
    url, _state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce="n-0S6_WzA2Mj"
    )
    callback = browser_authorize(url, person.email)
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    assert set(token["scope"].split()) == {"openid", "profile", "user_birthday"}

    # ID token: RS256, signed by the published JWKS, pairwise subject, our nonce.
    keys = jwk.JWKSet.from_json(requests.get(meta["jwks_uri"], timeout=10).text)
    checked = jwt.JWT(jwt=token["id_token"], key=keys, expected_type="JWS")
    assert checked.token.jose_header["alg"] == "RS256"
    claims = json.loads(checked.claims)
    assert claims["iss"] == meta["issuer"]
    assert claims["aud"] == app.client_id
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["sub"] == app_scoped_id(app.pk, person.pk)

    info = session.get(meta["userinfo_endpoint"], timeout=10).json()
    assert info == {"sub": claims["sub"], "name": "Ada Lovelace", "picture": ""}

    # Refresh rotates; the old refresh token is then dead (and its reuse kills the family).
    old_refresh = token["refresh_token"]
    new = session.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
    assert new["refresh_token"] != old_refresh
    assert session.get(meta["userinfo_endpoint"], timeout=10).status_code == 200

    seen = session.introspect_token(
        meta["introspection_endpoint"], token=new["access_token"]
    ).json()
    assert seen["active"] is True
    assert seen["sub"] == claims["sub"]
    assert seen["client_id"] == app.client_id

    session.revoke_token(
        meta["revocation_endpoint"], token=new["access_token"], token_type_hint="access_token"
    )
    assert session.get(meta["userinfo_endpoint"], timeout=10).status_code == 401
    gone = session.introspect_token(meta["introspection_endpoint"], token=new["access_token"])
    assert gone.json() == {"active": False}


def test_requests_oauth2client_full_flow(live_server, person):
    app, secret = make_app(name="RO2C app")
    discovery = urljoin(live_server.url, "/.well-known/openid-configuration")
    client = OAuth2Client.from_discovery_endpoint(
        discovery,
        auth=(app.client_id, secret),
        redirect_uri=REDIRECT_URI,
        testing=True,  # plain-HTTP live_server; the library otherwise insists on HTTPS
    )
    assert client.issuer == live_server.url
    request = client.authorization_request(scope="openid profile email")
    assert request.code_challenge_method == "S256"
    callback = browser_authorize(str(request.uri), person.email)
    response = request.validate_callback(callback)  # state and RFC 9207 `iss` checked
    token = client.authorization_code(response, validate=False)
    assert set(str(token.scope).split()) == {"openid", "profile", "email"}
    info = client.userinfo(token)
    assert info["email"] == "ada@example.test"
    assert info["sub"] == app_scoped_id(app.pk, person.pk)

    refreshed = client.refresh_token(token)
    assert refreshed.refresh_token != token.refresh_token
    assert client.introspect_token(refreshed.access_token)["active"] is True

    client.revoke_refresh_token(refreshed.refresh_token)  # RFC 7009; drops its access token
    assert client.introspect_token(refreshed.access_token)["active"] is False


def test_requests_oauth2client_checks_iss_on_a_denial_too(live_server, person):
    """RFC 9207: the error redirect names the issuer, so a client that requires `iss`
    reads a denial as a denial, not as a mix-up attack."""
    app, secret = make_app(name="RO2C denied")
    discovery = urljoin(live_server.url, "/.well-known/openid-configuration")
    client = OAuth2Client.from_discovery_endpoint(
        discovery, auth=(app.client_id, secret), redirect_uri=REDIRECT_URI, testing=True
    )
    meta = requests.get(discovery, timeout=10).json()
    assert meta["authorization_response_iss_parameter_supported"] is True
    # OAuth2Client.authorization_request() does not pass that flag on, so the request is
    # built directly with `iss` required, as discovery says.
    request = AuthorizationRequest(
        authorization_endpoint=str(client.authorization_endpoint),
        client_id=app.client_id,
        redirect_uri=REDIRECT_URI,
        scope="openid profile",
        issuer=client.issuer,
        authorization_response_iss_parameter_supported=True,
    )
    callback = browser_authorize(str(request.uri), person.email, decision="deny")
    with pytest.raises(AuthorizationResponseError) as refused:
        request.validate_callback(callback)
    assert refused.type is AuthorizationResponseError  # not MissingIssuer, MismatchingIssuer
    assert refused.value.error == "access_denied"
