"""The refresh grant through a real `consentry serve` process (so through its machine
lane, consentry/oauth/rotation.py), spent by Authlib's OAuth2Session: rotation several
times in a row, each ID token verified against the served JWKS, the new access token
accepted by the Graph API, and a replayed refresh token refused with the whole family
revoked (RFC 9700 4.14.2)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from jwcrypto import jwk, jwt

from tests.live_servers import Server, base_env, run_python, scratch_database

WORLD = """
import json, os, secrets, uuid
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
import django
django.setup()
from datetime import timedelta
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.utils import timezone
from consentry.oauth.models import AccessToken, RefreshToken
from consentry.people.models import Person
from tests.graph_fixtures import direct_consent
from tests.oauth_flow import make_app
person = Person.objects.create(email="ada@refresh.test", name="Ada Refresh", password="!")
person.last_login = timezone.now()
person.save(update_fields=["last_login"])
app, secret = make_app(permissions=["user_birthday"])
scopes = ["openid", "profile", "email", "user_birthday"]
consent = direct_consent(person.pk, app, scopes)
access = AccessToken.objects.create(user=person, application=app, consent=consent,
    token=secrets.token_urlsafe(30), scope=" ".join(scopes),
    expires=timezone.now() + timedelta(hours=1))
raw = secrets.token_urlsafe(30)
RefreshToken.objects.create(user=person, application=app, consent=consent, token=raw,
    access_token=access, token_family=uuid.uuid4())
print(json.dumps({"client_id": app.client_id, "secret": secret, "refresh_token": raw}))
"""


def test_authlib_refreshes_through_the_served_lane(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as url:
        env = base_env(tmp_path, url)
        world = json.loads(run_python(env, WORLD).strip().splitlines()[-1])
        server = Server(env).start()
        try:
            meta = httpx.get(f"{server.base}/.well-known/openid-configuration").json()
            keys = jwk.JWKSet.from_json(httpx.get(meta["jwks_uri"]).text)
            session = OAuth2Session(
                world["client_id"],
                world["secret"],
                token_endpoint_auth_method="client_secret_basic",
            )
            refresh = world["refresh_token"]
            spent = []
            for _ in range(3):
                token = session.refresh_token(meta["token_endpoint"], refresh_token=refresh)
                assert token["token_type"] == "Bearer"
                assert token["scope"] == "openid profile email user_birthday"
                assert token["refresh_token"] != refresh
                claims = json.loads(
                    jwt.JWT(
                        jwt=token["id_token"],
                        key=keys,
                        check_claims={"iss": meta["issuer"], "aud": world["client_id"]},
                    ).claims
                )
                assert claims["name"] == "Ada Refresh"
                assert claims["email"] == "ada@refresh.test"
                me = httpx.get(
                    f"{server.base}/v1/me",
                    params={"fields": "name"},
                    headers={"Authorization": f"Bearer {token['access_token']}"},
                )
                assert me.status_code == 200
                assert me.json()["data"]["name"] == "Ada Refresh"
                spent.append(refresh)
                refresh = token["refresh_token"]
            # A replayed refresh token: refused, and the family -- the live one too -- dies.
            with pytest.raises(OAuthError) as replay:
                session.refresh_token(meta["token_endpoint"], refresh_token=spent[1])
            assert replay.value.error == "invalid_grant"
            with pytest.raises(OAuthError) as dead:
                session.refresh_token(meta["token_endpoint"], refresh_token=refresh)
            assert dead.value.error == "invalid_grant"
            gone = httpx.get(
                f"{server.base}/v1/me",
                headers={"Authorization": f"Bearer {token['access_token']}"},
            )
            assert gone.status_code == 401
        finally:
            server.stop()
