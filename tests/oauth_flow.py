"""Helpers that run the real OAuth flow in-process, for any test that needs an app and a
token (Graph API tests included).

    app, secret = make_app(name="Calendar", permissions=["user_birthday"])
    tokens = obtain_token(client, person, app, ["openid", "profile", "user_birthday"])
    client.get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")

`obtain_token` goes through exactly what a browser and an app would: the authorization
endpoint with PKCE S256, the consent form (CSRF included), and the token endpoint with
HTTP Basic client authentication. Use it inside a test with the `db` fixture.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.test import Client
from django.utils import timezone

from consentry.oauth.models import Application, AppStatus
from consentry.people.models import Person

REDIRECT_URI = "https://app.example.test/callback"
AUTHORIZE_PATH = "/oauth/authorize/"
TOKEN_PATH = "/oauth/token/"
_names = itertools.count(1)


class CheapArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2 (same algorithm and hash format) at the lowest cost, so tests that create
    people and client secrets stay fast. Production uses Django's Argon2 parameters."""

    time_cost = 1
    memory_cost = 64
    parallelism = 1


@pytest.fixture
def cheap_argon2(settings: Any) -> None:
    """Use with `pytestmark = pytest.mark.usefixtures("cheap_argon2")` and
    `from tests.oauth_flow import cheap_argon2  # noqa: F401`."""
    settings.PASSWORD_HASHERS = [
        "tests.oauth_flow.CheapArgon2PasswordHasher",
        "consentry.oauth.hashers.ClientSecretHasher",  # as in production's list
    ]


def make_app(
    name: str = "",
    permissions: Iterable[str] = (),
    live: bool = True,
    members: Iterable[Person] = (),
    *,
    redirect_uri: str = REDIRECT_URI,
    purposes: dict[str, str] | None = None,
    agreement: bool = True,
) -> tuple[Application, str]:
    """A confidential client with one exact redirect URI, approved for `permissions`
    (review-needed ones go into approved_permissions; the data-use agreement is signed
    unless agreement=False). Returns the app and its client secret, which is stored only
    hashed; it is also kept on the instance as `app.plain_client_secret` for obtain_token.
    """
    secret = secrets.token_urlsafe(48)
    app = Application.objects.create(
        name=name or f"Test app {next(_names)}",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        post_logout_redirect_uris=redirect_uri,
        client_secret=secret,
        algorithm=Application.RS256_ALGORITHM,
        status=AppStatus.LIVE if live else AppStatus.DEVELOPMENT,
        approved_permissions=sorted(set(permissions)),
        purposes=purposes or {},
        agreement_signed_at=timezone.now() if agreement else None,
    )
    if members:
        app.members.add(*members)
    app.plain_client_secret = secret  # type: ignore[attr-defined]
    return app, secret


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def authorize_url(
    application: Application,
    scopes: Sequence[str],
    challenge: str,
    state: str = "",
    **extra: str,
) -> str:
    params = {
        "response_type": "code",
        "client_id": application.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": " ".join(scopes),
        "state": state or secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": secrets.token_urlsafe(16),
    }
    params.update(extra)
    return AUTHORIZE_PATH + "?" + urlencode(params)


def redirect_params(location: str) -> dict[str, str]:
    """The query of a redirect back to the app, one value per key."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def obtain_code(
    client: Client,
    person: Person,
    application: Application,
    scopes: Sequence[str],
    *,
    untick: Iterable[str] = (),
    email_choice: str = "real",
) -> tuple[str, str]:
    """Sign `person` in, authorize and consent; returns (code, code_verifier)."""
    client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = authorize_url(application, scopes, challenge, state)
    response = client.get(url)
    if response.status_code == 200:  # the consent screen; 302 means nothing new was asked
        ticked = [p for p in scopes if p not in set(untick)]
        response = client.post(
            url, {"decision": "allow", "permission": ticked, "email_choice": email_choice}
        )
    assert response.status_code == 302, response.content[:500]
    location = response["Location"]
    assert location.startswith(REDIRECT_URI), location
    params = redirect_params(location)
    assert params.get("state") == state, params
    assert "code" in params, params
    return params["code"], verifier


def exchange_code(
    client: Client, application: Application, code: str, verifier: str, secret: str
) -> Any:
    """POST the code to the token endpoint (RFC 6749 4.1.3); returns the response."""
    return client.post(
        TOKEN_PATH,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def refresh(client: Client, application: Application, refresh_token: str, secret: str) -> Any:
    return client.post(
        TOKEN_PATH,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def obtain_token(
    client: Client,
    person: Person,
    application: Application,
    scopes: Sequence[str],
    *,
    untick: Iterable[str] = (),
    email_choice: str = "real",
    client_secret: str | None = None,
) -> dict[str, Any]:
    """Run the authorization code + PKCE flow for `person` and return the token response
    JSON (access_token, refresh_token, id_token when `openid` is asked, scope, ...).

    `untick` lists permissions the person unticks on the consent screen; `email_choice`
    is "real" or "relay". The client secret defaults to the one make_app() returned.
    """
    secret = client_secret or getattr(application, "plain_client_secret", None)
    assert secret, "pass client_secret= for an app not made by make_app()"
    code, verifier = obtain_code(
        client, person, application, scopes, untick=untick, email_choice=email_choice
    )
    response = exchange_code(client, application, code, verifier, secret)
    assert response.status_code == 200, response.content[:500]
    return dict(response.json())
