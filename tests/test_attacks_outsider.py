"""Defects found by attacking the running service from outside (after the hardening of
issue 7), each pinned by a test that failed before its fix. Runs on SQLite and on
PostgreSQL (scripts/run-tests).

- Malformed percent-encoding in a query string (`?a=%zz`): oauthlib re-parses the URL
  and raised ValueError, a 500 at the authorization, token, revocation, introspection and
  userinfo endpoints.
- A form body in a charset other than UTF-8: Django raises BadRequest while the CSRF
  check reads the body, and again inside its own 400 handler (which runs the CSRF check
  too), so the error escaped Django entirely: a 500 from the WSGI server on every page.
- Django's own refusals (a malformed multipart body, a failed CSRF check on a JSON
  endpoint) came back as HTML from endpoints that speak JSON.
- The code exchange without `redirect_uri` was accepted although the authorization
  request carried one (RFC 6749 4.1.3: then it is REQUIRED and must be identical).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from urllib.parse import quote

import pytest
from django.db import connection
from django.test import Client

from consentry.oauth.models import AccessToken
from tests.oauth_flow import (
    REDIRECT_URI,
    TOKEN_PATH,
    authorize_url,
    basic_auth,
    cheap_argon2,  # noqa: F401
    make_app,
    obtain_code,
    obtain_token,
    pkce_pair,
    redirect_params,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]
LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"
OAUTH_JSON = ["/oauth/token/", "/oauth/revoke/", "/oauth/introspect/"]
FOREIGN_CHARSET = "application/x-www-form-urlencoded; charset=utf-16"


def _assert_oauth_json_error(response, status: int = 400) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    assert response.json()["error"]


def _assert_graph_error(response, status: int) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["status"] == status


def _csrf_client() -> Client:
    """A browser-like client: CSRF enforced, a CSRF cookie present, server errors
    answered rather than raised."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.cookies["csrftoken"] = "a" * 32
    return client


# --- malformed percent-encoding ----------------------------------------------------------


@pytest.mark.parametrize("path", OAUTH_JSON)
def test_bad_percent_encoding_in_the_query_is_a_json_400(path):
    app, secret = make_app()
    response = Client(raise_request_exception=False).post(
        path + "?a=%zz",
        {"grant_type": "refresh_token", "refresh_token": "r", "token": "t"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    _assert_oauth_json_error(response)


def test_bad_percent_encoding_at_userinfo_is_a_json_400(make_person):
    app, _secret = make_app()
    client = Client(raise_request_exception=False)
    tokens = obtain_token(client, make_person(), app, ["openid", "profile"])
    response = client.get(
        "/oauth/userinfo/?x=%zz", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}"
    )
    _assert_oauth_json_error(response)


@pytest.mark.parametrize("where", ["extra", "state"])
def test_bad_percent_encoding_at_the_authorization_endpoint_is_an_error_page(make_person, where):
    app, _secret = make_app()
    client = Client(raise_request_exception=False)
    client.force_login(make_person(), backend=LOGIN_BACKEND)
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["openid", "profile"], challenge, state="s1")
    url = url + "&x=%zz" if where == "extra" else url.replace("state=s1", "state=%zz")
    response = client.get(url)
    assert response.status_code == 400, response.content[:300]
    assert "Location" not in response


# --- a form body in another charset --------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/accounts/i18n/setlang/", "/staff/"])
def test_a_form_in_a_foreign_charset_is_a_400_page(path):
    response = _csrf_client().post(path, b"a=b", content_type=FOREIGN_CHARSET)
    assert response.status_code == 400, response.content[:300]


@pytest.mark.parametrize("path", ["/v1/me", "/v1/openapi.json"])
def test_a_form_in_a_foreign_charset_at_the_graph_api_is_a_400_in_its_shape(path):
    response = _csrf_client().post(path, b"a=b", content_type=FOREIGN_CHARSET)
    assert response.status_code in (400, 405), response.content[:300]
    _assert_graph_error(response, response.status_code)


@pytest.mark.parametrize("path", [*OAUTH_JSON, "/oauth/userinfo/"])
def test_a_form_in_a_foreign_charset_at_oauth_endpoints_is_a_json_400(path):
    response = _csrf_client().post(path, b"a=b", content_type=FOREIGN_CHARSET)
    _assert_oauth_json_error(response)


# --- Django's refusals on JSON endpoints speak JSON ----------------------------------------


@pytest.mark.parametrize("path", [*OAUTH_JSON, "/oauth/userinfo/"])
def test_a_malformed_multipart_body_at_oauth_endpoints_is_a_json_400(path):
    response = Client(raise_request_exception=False).post(
        path, b"garbage", content_type="multipart/form-data"
    )
    _assert_oauth_json_error(response)


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/oauth/jwks/",
    ],
)
def test_a_post_to_a_read_only_oauth_document_is_answered_in_json(path):
    response = _csrf_client().post(path, {"a": "b"})
    assert response.status_code in (403, 405), response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    assert response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/oauth/jwks/",
    ],
)
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_other_methods_on_a_read_only_oauth_document_are_a_json_405(path, method):
    response = getattr(Client(), method)(path)
    assert response.status_code == 405, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    assert response.json()["error"]
    assert "GET" in response["Allow"]


@pytest.mark.parametrize("path", ["/v1/openapi.json", "/v1/docs"])
def test_a_post_to_the_graph_api_documents_is_answered_in_its_shape(path):
    response = _csrf_client().post(path, {"a": "b"})
    assert response.status_code in (403, 405), response.content[:300]
    _assert_graph_error(response, response.status_code)


# --- the code exchange needs the redirect URI the authorization request named ------------


def test_code_exchange_without_the_redirect_uri_is_refused(make_person):
    app, secret = make_app()
    client = Client()
    code, verifier = obtain_code(client, make_person(), app, ["openid", "profile"])
    response = client.post(
        TOKEN_PATH,
        {"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    _assert_oauth_json_error(response)
    assert "access_token" not in response.json()
    assert not AccessToken.objects.filter(application=app).exists()


def test_authorization_request_without_a_redirect_uri_is_refused(make_person):
    """OpenID Connect Core 3.1.2.1 requires `redirect_uri`; requiring it always is what
    lets the code exchange require it (above). The error goes back to the one registered
    URI, with `iss`, and no code."""
    app, _secret = make_app()
    client = Client()
    client.force_login(make_person(), backend=LOGIN_BACKEND)
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["openid", "profile"], challenge, state="s1")
    url = url.replace("redirect_uri=" + quote(REDIRECT_URI, safe=""), "x=1")
    assert "redirect_uri" not in url
    response = client.get(url)
    assert response.status_code == 302, response.content[:300]
    params = redirect_params(response["Location"])
    assert response["Location"].startswith(REDIRECT_URI)
    assert params["error"] == "invalid_request"
    assert "code" not in params
    assert params["iss"]


@pytest.mark.parametrize(
    ("name", "error"),
    [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")],
)
def test_request_objects_are_refused_not_ignored(make_person, name, error):
    """A client sending a request object expects its parameters to rule; ignoring it and
    acting on the plain parameters instead would issue a code the client did not ask for
    (OpenID Connect Core 6: refuse with request_not_supported / request_uri_not_supported)."""
    app, _secret = make_app()
    client = Client()
    client.force_login(make_person(), backend=LOGIN_BACKEND)
    _verifier, challenge = pkce_pair()
    extra = {name: "https://app.example.test/request.jwt" if name == "request_uri" else "e30."}
    response = client.get(authorize_url(app, ["openid", "profile"], challenge, **extra))
    assert response.status_code == 302, response.content[:300]
    assert response["Location"].startswith(REDIRECT_URI)
    params = redirect_params(response["Location"])
    assert params["error"] == error
    assert "code" not in params
    assert params["iss"]


def test_discovery_says_request_objects_are_not_supported():
    data = Client().get("/.well-known/openid-configuration").json()
    assert data["request_parameter_supported"] is False
    assert data["request_uri_parameter_supported"] is False


# --- concurrent use of one refresh token -----------------------------------------------


def _in_threads(work: Callable[[int], None], threads: int) -> None:
    """work(n) in `threads` threads, each on its own database connection, started
    together. The SQLite test database is in memory with a shared cache, which reports
    table locks at once where a database file waits; there the threads run one at a time,
    as SQLite's single writer (IMMEDIATE transactions) would have it."""
    failures: list[BaseException] = []
    serial = threading.Lock() if connection.vendor == "sqlite" else contextlib.nullcontext()
    barrier = threading.Barrier(threads)

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            with serial:
                work(n)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if failures:
        raise failures[0]


@pytest.mark.django_db(transaction=True)
def test_one_refresh_token_used_concurrently_is_spent_once(make_person):
    """Several refreshes racing with one refresh token: before the fix, on PostgreSQL,
    they all passed validation before any took the row lock, and the later ones then
    either minted a second token family member (double spend) or tried to hand back the
    winner's access token, which is stored only hashed: a 500. Now at most one wins, the
    others are refused as reuse, and nothing is a server error."""
    app, secret = make_app()
    person = make_person()
    for _round in range(4):
        tokens = obtain_token(Client(), person, app, ["openid", "profile"])
        statuses: list[int] = []

        def use(
            _n: int, refresh_token: str = tokens["refresh_token"], statuses: list[int] = statuses
        ) -> None:
            response = Client(raise_request_exception=False).post(
                TOKEN_PATH,
                {"grant_type": "refresh_token", "refresh_token": refresh_token},
                HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
            )
            statuses.append(response.status_code)

        _in_threads(use, 4)
        assert set(statuses) <= {200, 400}, statuses
        assert statuses.count(200) <= 1, statuses
