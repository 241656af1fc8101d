"""The replay's people and apps, talking to the real site in process.

A person's browser and an app's backend are Django test clients against the real URL map:
the authorization endpoint (consent page, CSRF-checked "Allow"), the token endpoint
(authorization code with PKCE S256) and the Graph API. Nothing here writes a grant, a
token or a ledger row: the views do, exactly as they do for HTTP from outside.

The replay's apps are public clients (browser apps, OAuth 2.1 section 2.1) using PKCE. A
confidential client would spend a quarter of a second of argon2 checking its 128-character
random secret on every code exchange, which would dominate the replay and prove nothing
about consent.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.conf import settings
from django.test import Client

from consentry.oauth.models import Application
from consentry.people.models import Person

_CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
_HOST = urlsplit(settings.PUBLIC_URL).hostname or "127.0.0.1"


class FlowError(RuntimeError):
    """The site refused a step the replay expected to succeed."""


@dataclass
class Install:
    """What an app holds after a person installed it."""

    person_id: int
    access_token: str
    refresh_token: str
    scope: frozenset[str]


class Site:
    """The two long-lived test clients every agent uses: a person's browser (CSRF checks
    on, as for a real browser) and the apps' backends. One handler each: building a
    handler loads the whole middleware chain (WhiteNoise indexes every static file)."""

    def __init__(self) -> None:
        self.browser = Client(enforce_csrf_checks=True, HTTP_HOST=_HOST)
        self.backend = Client(HTTP_HOST=_HOST)


@dataclass
class AppAgent:
    """One app: its registration and the tokens its installers gave it."""

    app: Application
    site: Site
    tokens: dict[int, Install] = field(default_factory=dict)

    def install(self, person: Person, scopes: tuple[str, ...]) -> Install | None:
        """`person` signs in, opens the app's authorization request, ticks everything the
        consent page offers and allows; the app exchanges the code with its PKCE verifier.
        None when the site refuses (e.g. the app was suspended meanwhile)."""
        browser = self.site.browser
        browser.cookies.clear()
        browser.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .decode()
            .rstrip("=")
        )
        state = secrets.token_urlsafe(12)
        redirect_uri = self.app.redirect_uris.split()[0]
        url = "/oauth/authorize/?" + urlencode(
            {
                "response_type": "code",
                "client_id": self.app.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(scopes),
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        page = browser.get(url)
        if page.status_code == 200:
            csrf = _CSRF.search(page.content)
            if csrf is None:
                return None  # an error page: the request was refused
            page = browser.post(
                url,
                {
                    "csrfmiddlewaretoken": csrf.group(1).decode(),
                    "decision": "allow",
                    "permission": list(scopes),
                    "email_choice": "real",
                },
            )
        if page.status_code != 302:
            return None
        answer = {k: v[0] for k, v in parse_qs(urlsplit(page["Location"]).query).items()}
        if answer.get("state") != state or "code" not in answer:
            return None
        response = self.site.backend.post(
            "/oauth/token/",
            {
                "grant_type": "authorization_code",
                "code": answer["code"],
                "redirect_uri": redirect_uri,
                "client_id": self.app.client_id,
                "code_verifier": verifier,
            },
        )
        if response.status_code != 200:
            return None
        install = self._keep(person.pk, response.json())
        return install

    def _keep(self, person_id: int, body: dict[str, Any]) -> Install:
        install = Install(
            person_id,
            body["access_token"],
            body.get("refresh_token", ""),
            frozenset(body["scope"].split()),
        )
        self.tokens[person_id] = install
        return install

    def refresh(self, person_id: int) -> bool:
        """Trade the refresh token for a new access token (RFC 6749 section 6); the site
        rotates the refresh token too. False when it refuses (grant revoked or lapsed)."""
        install = self.tokens.pop(person_id, None)
        if install is None or not install.refresh_token:
            return False
        response = self.site.backend.post(
            "/oauth/token/",
            {
                "grant_type": "refresh_token",
                "refresh_token": install.refresh_token,
                "client_id": self.app.client_id,
            },
        )
        if response.status_code != 200:
            return False
        self._keep(person_id, response.json())
        return True

    def get(self, person_id: int, path: str, **params: Any) -> tuple[int, Any]:
        """A Graph API GET with the token `person_id` gave, refreshing it once when it has
        expired; (status, JSON body)."""
        install = self.tokens.get(person_id)
        if install is None:
            return 401, None
        response = self.site.backend.get(
            path, params, HTTP_AUTHORIZATION=f"Bearer {install.access_token}"
        )
        if response.status_code == 401 and self.refresh(person_id):
            install = self.tokens[person_id]
            response = self.site.backend.get(
                path, params, HTTP_AUTHORIZATION=f"Bearer {install.access_token}"
            )
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None
