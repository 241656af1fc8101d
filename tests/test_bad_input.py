"""Bad input gets a clear 4xx in the endpoint's own error shape and writes nothing: NUL
bytes, control characters, huge values, too many or repeated parameters. Runs on SQLite
and on PostgreSQL (scripts/run-tests), where a NUL used to be a 500 (`DataError`).

Error shapes: RFC 6749 5.2 JSON (`{"error": "invalid_request", ...}`) at the token,
revocation, introspection and userinfo endpoints; the Graph API's one shape under /v1/;
the error page (or an error redirect to the app, once the client and redirect URI are
known good) at the authorization and logout endpoints; the form with its errors in place
on the sign-in page."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest
from django.test import Client

from consentry.grants.models import Consent
from consentry.oauth.models import AccessToken, Grant
from tests.oauth_flow import (
    AUTHORIZE_PATH,
    REDIRECT_URI,
    TOKEN_PATH,
    authorize_url,
    basic_auth,
    cheap_argon2,  # noqa: F401
    make_app,
    obtain_token,
    pkce_pair,
    redirect_params,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]
LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"
BACK_CHANNEL = ["/oauth/token/", "/oauth/introspect/", "/oauth/revoke/"]


def _assert_oauth_json_error(response, status: int = 400, error: str = "invalid_request"):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == error


def _assert_graph_error(response, status: int):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status


def _basic_raw(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


# --- 10. NUL and control characters at the OAuth endpoints ------------------------------


@pytest.mark.parametrize("path", BACK_CHANNEL)
@pytest.mark.parametrize("value", ["\x00", "app\x00", "a\x07b"])
def test_control_characters_in_client_id_are_refused(path, value):
    response = Client().post(
        path,
        {"client_id": value, "client_secret": "x", "grant_type": "refresh_token", "token": "t"},
    )
    _assert_oauth_json_error(response)


@pytest.mark.parametrize("path", BACK_CHANNEL)
@pytest.mark.parametrize("credentials", ["x\x00:y", "x:y\x00", "\x00:\x00"])
def test_control_characters_in_basic_credentials_are_refused(path, credentials):
    response = Client().post(
        path,
        {"grant_type": "refresh_token", "refresh_token": "r", "token": "t"},
        HTTP_AUTHORIZATION=_basic_raw(credentials),
    )
    _assert_oauth_json_error(response)


def test_nul_in_the_token_parameter_is_refused():
    app, secret = make_app()
    for path in BACK_CHANNEL:
        response = Client().post(
            path,
            {"grant_type": "refresh_token", "refresh_token": "a\x00", "token": "a\x00"},
            HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        )
        _assert_oauth_json_error(response)


def test_nul_in_the_bearer_token_is_refused_at_userinfo():
    response = Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION="Bearer a\x00b")
    assert response.status_code in (400, 401)
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "\x00"},
        {"client_id": "x", "redirect_uri": "https://a.test/\x00"},
        {"state": "\x00"},
    ],
)
def test_control_characters_at_the_authorization_endpoint_are_an_error_page(make_person, params):
    client = Client()
    client.force_login(make_person(), backend=LOGIN_BACKEND)
    response = client.get(AUTHORIZE_PATH + "?" + urlencode({"response_type": "code", **params}))
    assert response.status_code == 400
    assert 'id="oauth-error"' in response.content.decode()
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("name", ["nonce", "code_challenge", "state"])
def test_nul_in_nonce_challenge_or_state_is_refused_and_nothing_is_stored(make_person, name):
    person = make_person()
    app, _ = make_app()
    client = Client()
    client.force_login(person, backend=LOGIN_BACKEND)
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["openid", "profile"], challenge, **{name: "a\x00b"})
    assert client.get(url).status_code == 400
    # 11. The consent form posted with it commits nothing either.
    response = client.post(url, {"decision": "allow", "permission": ["openid", "profile"]})
    assert response.status_code == 400
    assert not Consent.objects.filter(person=person).exists()
    assert not Grant.objects.filter(application=app).exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("code_challenge", "!" * 43),
        ("code_challenge", "a" * 42),
        ("code_challenge", "a" * 129),
        ("code_challenge", ""),
        ("nonce", "n" * 256),
        ("state", "s" * 1025),
    ],
)
def test_malformed_challenge_nonce_or_state_go_back_to_the_app_as_invalid_request(
    make_person, name, value
):
    person = make_person()
    app, _ = make_app()
    client = Client()
    client.force_login(person, backend=LOGIN_BACKEND)
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["openid", "profile"], challenge, **{name: value})
    for response in (client.get(url), client.post(url, {"decision": "allow"})):
        assert response.status_code == 302
        assert response["Location"].startswith(REDIRECT_URI)
        assert redirect_params(response["Location"])["error"] == "invalid_request"
    assert not Consent.objects.filter(person=person).exists()
    assert not Grant.objects.filter(application=app).exists()


# --- 11. consent and code are one transaction -------------------------------------------


def test_consent_is_not_kept_when_the_code_cannot_be_issued(make_person, monkeypatch):
    """A write failure while issuing the code rolls the consent back with it."""
    from django.db import DatabaseError

    from consentry.oauth.validators import ConsentryValidator

    def fail(*args, **kwargs):
        raise DatabaseError("the code could not be stored")

    person = make_person()
    app, _ = make_app()
    client = Client(raise_request_exception=False)
    client.force_login(person, backend=LOGIN_BACKEND)
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["openid", "profile"], challenge)
    monkeypatch.setattr(ConsentryValidator, "_create_authorization_code", fail)
    response = client.post(url, {"decision": "allow", "permission": ["openid", "profile"]})
    assert response.status_code == 500
    assert not Consent.objects.filter(person=person).exists()


# --- 14. repeated parameters and Django's own refusals at the OAuth endpoints ------------


def test_repeated_parameters_at_the_token_endpoint_are_refused():
    app, secret = make_app()
    body = "grant_type=refresh_token&grant_type=authorization_code&refresh_token=x"
    response = Client().post(
        TOKEN_PATH,
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    _assert_oauth_json_error(response)
    assert "repeated" in response.json()["error_description"]


def test_repeated_parameters_at_the_authorization_endpoint_are_refused(make_person):
    person = make_person()
    app, _ = make_app()
    client = Client()
    client.force_login(person, backend=LOGIN_BACKEND)
    _verifier, challenge = pkce_pair()
    url = authorize_url(app, ["openid"], challenge) + "&scope=openid+email"
    response = client.get(url)
    assert response.status_code == 400
    assert "Location" not in response


def test_too_many_parameters_at_the_token_endpoint_is_a_json_400():
    body = "&".join(f"p{i}=x" for i in range(1200))
    response = Client().post(TOKEN_PATH, body, content_type="application/x-www-form-urlencoded")
    _assert_oauth_json_error(response)


# --- 9. logout with an unknown client -----------------------------------------------------


@pytest.mark.parametrize("client_id", ["nope", "\x00", "x" * 5000])
def test_logout_with_an_unknown_or_malformed_client_id_is_a_400(client_id):
    response = Client().get("/oauth/logout/", {"client_id": client_id})
    assert response.status_code == 400


# --- 8. the Graph API: Django's refusals in the API's error shape ------------------------


@pytest.fixture
def bearer(make_person):
    app, _ = make_app(permissions=["user_friends"])
    tokens = obtain_token(Client(), make_person(), app, ["openid", "profile", "user_friends"])
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens['access_token']}"}


def test_too_many_query_parameters_at_the_graph_api_are_a_400(bearer):
    query = "&".join(["a="] * 1200)
    response = Client().get(f"/v1/me?{query}", **bearer)
    _assert_graph_error(response, 400)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/me?fields=%00",
        "/v1/me?fields=name%00",
        "/v1/me/friends?after=%00",
        "/v1/me/friends?limit=%00",
        "/v1/me/friends?limit=99999999999999999999999",
        "/v1/me?fields=" + "x" * 5000,
    ],
)
def test_bad_values_at_the_graph_api_are_a_400(bearer, path):
    _assert_graph_error(Client().get(path, **bearer), 400)


def test_nul_in_an_app_scoped_id_is_a_404(bearer):
    _assert_graph_error(Client().get("/v1/people/%00", **bearer), 404)


def test_nul_in_the_bearer_token_at_the_graph_api_is_a_401():
    _assert_graph_error(Client().get("/v1/me", HTTP_AUTHORIZATION="Bearer a\x00b"), 401)


# --- 12. sign-in with absurd usernames ----------------------------------------------------


@pytest.mark.parametrize("username", ["a" * 256 + "@example.test", "a\x00b@example.test"])
def test_absurd_usernames_at_sign_in_are_a_form_error(username):
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": "x"})
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not AccessToken.objects.exists()


# --- 13. `consentry import`: FILE:LINE: reason, never a traceback, nothing written -------

GOOD_PERSON = '{"id": "ok", "email": "ok@example.test", "name": "Ok"}'
BAD_LINES = {
    "lone surrogate": '{"id": "p1", "email": "p1@example.test", "name": "a\\ud800b"}',
    "NUL": '{"id": "p1", "email": "p1@example.test", "name": "a\\u0000b"}',
    "NUL in a key": '{"id": "p1", "email": "p1@example.test", "name": "x", "a\\u0000": 1}',
    "NUL in a like": '{"id": "p1", "email": "p1@example.test", "name": "x", "likes": ["\\u0000"]}',
    "deep nesting": '{"id": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "huge integer": '{"id": "p1", "email": "p1@example.test", "name": ' + "9" * 5000 + "}",
    "huge bad email": '{"id": "p1", "email": "' + "x" * 100_000 + '", "name": "x"}',
}


def _import_error(path) -> str:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as failure:
        call_command("import", str(path))
    return str(failure.value)


def _row_counts() -> tuple[int, ...]:
    from consentry.people.models import Friendship, Person, Post

    return Person.objects.count(), Friendship.objects.count(), Post.objects.count()


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_import_of_a_bad_line_names_file_and_line_and_writes_nothing(tmp_path, case):
    path = tmp_path / "people.jsonl"
    path.write_text(GOOD_PERSON + "\n" + BAD_LINES[case] + "\n", encoding="utf-8")
    before = _row_counts()
    message = _import_error(path)
    assert f"{path}:2: " in message
    assert "Traceback" not in message
    assert len(message) < 1000  # a short prefix of the bad value at most
    assert _row_counts() == before


def test_import_of_an_overlong_line_names_it_and_reads_on(tmp_path):
    from consentry.world.importer import MAX_LINE_BYTES

    path = tmp_path / "people.jsonl"
    long_line = '{"id": "p1", "email": "p1@example.test", "name": "' + "x" * MAX_LINE_BYTES + '"}'
    bad_third = '{"id": "p3"}'
    path.write_text("\n".join([GOOD_PERSON, long_line, bad_third]) + "\n", encoding="utf-8")
    before = _row_counts()
    message = _import_error(path)
    assert f"{path}:2: line longer than" in message
    assert f"{path}:3: missing field" in message
    assert len(message) < 1000
    assert _row_counts() == before


# --- 14. repeated parameters and HEAD under /v1/; JSON errors from JSON endpoints ---------


@pytest.mark.parametrize("query", ["fields=name&fields=bogus", "fields=bogus&fields=name"])
def test_repeated_graph_parameters_are_refused_in_either_order(bearer, query):
    response = Client().get(f"/v1/me?{query}", **bearer)
    _assert_graph_error(response, 400)
    assert "repeated" in response.json()["error"]["message"]


def test_head_is_get_without_the_body(bearer):
    get = Client().get("/v1/me", **bearer)
    head = Client().head("/v1/me", **bearer)
    assert head.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == "application/json"
    assert int(head["Content-Length"]) == len(get.content)
    _assert_graph_error(Client().get("/v1/me"), 401)
    assert Client().head("/v1/me").status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/oauth/token/"),
        ("get", "/oauth/revoke/"),
        ("get", "/oauth/introspect/"),
        ("put", "/oauth/userinfo/"),
    ],
)
def test_oauth_json_endpoints_answer_errors_in_json(method, path):
    response = getattr(Client(), method)(path)
    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]


def test_userinfo_without_a_token_is_a_json_401():
    response = Client().get("/oauth/userinfo/")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response["WWW-Authenticate"].startswith("Bearer")
