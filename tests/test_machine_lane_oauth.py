"""Token introspection and UserInfo on the machine lane (consentry/oauth/lane.py): the
plain successful request answered without Django's handler, with Django's answer and
headers; everything else handed to Django with its body intact, and answered there
exactly as before (issue "Performance")."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core import signals
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext

from consentry.ledger.api import ledger_size, read_entry
from consentry.oauth import clients, throttle, views
from consentry.oauth import lane as lane_module
from consentry.oauth.models import Application, AppStatus
from consentry.oauth.pairwise import app_scoped_id
from consentry.web.lane import MachineLane
from tests.graph_fixtures import direct_consent, direct_token
from tests.lane_helpers import Counting, call, keep_the_test_connection  # noqa: F401
from tests.oauth_flow import basic_auth, cheap_argon2, make_app  # noqa: F401

pytestmark = pytest.mark.django_db

SCOPES = ["openid", "profile", "user_birthday"]
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def world(make_person: Any) -> dict[str, Any]:
    cache.clear()
    person = make_person(birthday="1990-05-17", name="Ada Lane")
    app, secret = make_app(permissions=["user_birthday"])
    consent = direct_consent(person.pk, app, SCOPES)
    token = direct_token(consent, SCOPES)
    return {"person": person, "app": app, "secret": secret, "token": token}


def introspect(lane: Any, w: dict[str, Any], body: str | bytes = "", **kw: Any) -> Any:
    data = body if body else f"token={w['token']}"
    headers = kw.pop("headers", {"Authorization": basic_auth(w["app"].client_id, w["secret"])})
    raw = data.encode() if isinstance(data, str) else data
    return call(
        lane,
        "/oauth/introspect/",
        "POST",
        raw,
        content_type=kw.pop("ct", FORM),
        headers=headers,
        **kw,
    )


def userinfo(lane: Any, token: str, method: str = "GET", **kw: Any) -> Any:
    return call(
        lane, "/oauth/userinfo/", method, headers={"Authorization": f"Bearer {token}"}, **kw
    )


def body(response: Any) -> Any:
    return json.loads(response[2])


def test_introspection_is_answered_by_the_lane_with_django_s_answer(world):
    inner = Counting()
    lane = MachineLane(inner)
    first = introspect(lane, world)
    assert inner.calls == 1  # the first one teaches the lane this address
    # A success through Django leaves nothing on the throttle's record.
    assert throttle.check(world["app"].client_id, "127.0.0.1") == (None, False)
    second = introspect(lane, world)
    assert inner.calls == 1  # answered without Django
    assert first[0] == second[0] == 200
    assert body(first) == body(second)
    expected = {
        "active": True,
        "scope": " ".join(SCOPES),
        "client_id": world["app"].client_id,
        "token_type": "Bearer",
        "sub": app_scoped_id(world["app"].pk, world["person"].pk),
    }
    assert {k: body(second)[k] for k in expected} == expected
    same = {k: v for k, v in first[1].items() if k not in ("X-Request-ID", "Content-Length")}
    assert {k: v for k, v in second[1].items() if k in same} == same
    assert second[1]["Cache-Control"] == "no-store"
    assert second[1]["Content-Length"] == str(len(second[2]))
    assert second[1]["X-Request-ID"] != first[1]["X-Request-ID"]


def test_the_lane_says_inactive_for_unknown_foreign_and_revoked_tokens(world, make_person):
    inner = Counting()
    lane = MachineLane(inner)
    introspect(lane, world)
    other_app, _ = make_app(permissions=["user_birthday"])
    other = direct_token(direct_consent(make_person().pk, other_app, SCOPES), SCOPES)
    for token in ("not-a-token", other, ""):
        assert body(introspect(lane, world, f"token={token}")) == {"active": False}
    assert body(introspect(lane, world, ""))["active"] is True
    assert inner.calls == 1
    from consentry.grants.actions import do_revoke_consent
    from consentry.grants.models import Consent

    do_revoke_consent(Consent.objects.get(person=world["person"], application=world["app"]))
    assert body(introspect(lane, world)) == {"active": False}


def test_a_wrong_secret_goes_to_django_which_refuses_and_counts_it(world):
    inner = Counting()
    lane = MachineLane(inner)
    introspect(lane, world)
    wrong = {"Authorization": basic_auth(world["app"].client_id, world["secret"] + "x")}
    refused = introspect(lane, world, headers=wrong)
    assert refused[0] == 401
    assert body(refused) == {"error": "invalid_client"}
    assert inner.calls == 2
    _wait, failed = throttle.check(world["app"].client_id, "127.0.0.1")
    assert failed  # the failure is on record...
    assert introspect(lane, world)[0] == 200
    assert inner.calls == 3  # ...so the next success goes through Django, which clears it
    assert throttle.check(world["app"].client_id, "127.0.0.1") == (None, False)
    assert introspect(lane, world)[0] == 200
    assert inner.calls == 3


def test_a_throttled_client_is_answered_429_by_django(world, settings):
    settings.CLIENT_AUTH_FREE_FAILURES = 1
    lane = MachineLane(Counting())
    introspect(lane, world)
    wrong = {"Authorization": basic_auth(world["app"].client_id, "nope")}
    statuses = [introspect(lane, world, headers=wrong)[0] for _ in range(3)]
    assert statuses[-1] == 429
    throttled = introspect(lane, world)  # the right secret: still delayed, never checked
    assert throttled[0] == 429
    assert "Retry-After" in throttled[1]


@pytest.mark.parametrize(
    ("form", "content_type"),
    [
        ("token=A&token=B", FORM),  # repeated: the edge refuses it
        ("token=A%00", FORM),  # a control character
        ("token=A&extra=1", FORM),  # another parameter
        ("token=A", "text/plain"),  # not a form
        ("token=A", f"{FORM}; charset=latin-1"),
        ("token=" + "A" * 9000, FORM),  # larger than the lane reads
    ],
)
def test_unusual_requests_get_django_s_own_answer(world, form, content_type):
    inner = Counting()
    lane = MachineLane(inner)
    introspect(lane, world)
    form = form.replace("A", world["token"], 2)
    expected = introspect(Counting(), world, form, ct=content_type)
    answer = introspect(lane, world, form, ct=content_type)
    assert inner.calls == 2
    assert (answer[0], answer[2]) == (expected[0], expected[2])


def test_client_secret_post_and_a_query_string_go_to_django(world):
    inner = Counting()
    lane = MachineLane(inner)
    introspect(lane, world)
    form = urlencode(
        {
            "token": world["token"],
            "client_id": world["app"].client_id,
            "client_secret": world["secret"],
        }
    )
    assert body(introspect(lane, world, form, headers={}))["active"] is True
    assert introspect(lane, world, query="x=1")[0] == 200
    assert inner.calls == 3


@pytest.mark.usefixtures("cheap_argon2")
def test_suspended_and_argon2_clients_are_left_to_the_validator(world):
    header = basic_auth(world["app"].client_id, world["secret"])
    assert clients.basic_client(header, "127.0.0.1") == clients.Client(
        world["app"].pk, world["app"].client_id
    )
    assert clients.basic_client(header.replace("Basic", "basic"), "127.0.0.1") is None
    assert clients.basic_client("Basic !!!", "127.0.0.1") is None
    assert clients.basic_client(basic_auth(world["app"].client_id, ""), "127.0.0.1") is None
    Application.objects.filter(pk=world["app"].pk).update(status=AppStatus.SUSPENDED)
    assert clients.basic_client(header, "127.0.0.1") is None
    Application.objects.filter(pk=world["app"].pk).update(status=AppStatus.LIVE)
    from django.contrib.auth.hashers import Argon2PasswordHasher, make_password

    argon = make_password(world["secret"], hasher=Argon2PasswordHasher())
    Application.objects.filter(pk=world["app"].pk).update(client_secret=argon)
    assert clients.basic_client(header, "127.0.0.1") is None
    lane = MachineLane(Counting())
    assert body(introspect(lane, world))["active"] is True  # Django upgrades the hash
    assert clients.basic_client(header, "127.0.0.1") is not None


def test_credentials_are_decoded_as_django_oauth_toolkit_decodes_them():
    encoded = base64.b64encode(b"my%20id:s%3Acret+x").decode()
    assert clients.basic_credentials(f"Basic {encoded}") == ("my id", "s:cret x")
    assert clients.basic_credentials("Basic " + base64.b64encode(b"no-colon").decode()) is None
    assert clients.basic_credentials("Bearer abc") is None


def test_userinfo_is_answered_by_the_lane_and_ledgered_each_time(world):
    inner = Counting()
    lane = MachineLane(inner)
    before = ledger_size()
    first = userinfo(lane, world["token"])
    second = userinfo(lane, world["token"])
    assert inner.calls == 1
    assert first[0] == second[0] == 200
    assert (
        body(first)
        == body(second)
        == {
            "sub": app_scoped_id(world["app"].pk, world["person"].pk),
            "name": "Ada Lane",
            "picture": world["person"].picture,
        }
    )
    assert second[1]["Access-Control-Allow-Origin"] == "*"
    assert second[1]["Cache-Control"] == "no-store"
    assert ledger_size() == before + 2
    entry = read_entry(before + 1)
    assert (entry.app_id, entry.actor_id) == (world["app"].pk, world["person"].pk)
    assert [person for person, _mask in entry.released] == [world["person"].pk]


def test_userinfo_errors_are_django_s(world, make_person):
    inner = Counting()
    lane = MachineLane(inner)
    userinfo(lane, world["token"])
    before = ledger_size()
    bad = userinfo(lane, "not-a-token")
    assert bad[0] == 401
    assert 'error="invalid_token"' in bad[1]["WWW-Authenticate"]
    no_openid = direct_token(
        direct_consent(make_person().pk, world["app"], ["user_birthday"]), ["user_birthday"]
    )
    assert userinfo(lane, no_openid)[0] == 403
    assert userinfo(lane, world["token"], query=f"access_token={world['token']}")[0] == 400
    posted = call(
        lane,
        "/oauth/userinfo/",
        "POST",
        f"access_token={world['token']}".encode(),
        content_type=FORM,
    )
    assert posted[0] == 401  # a token in the body is not read
    assert inner.calls == 5
    assert ledger_size() == before  # nothing was disclosed
    assert userinfo(lane, world["token"], method="POST")[0] == 200
    assert inner.calls == 5


def test_an_unlearnt_host_is_always_django_s(world):
    inner = Counting()
    lane = MachineLane(inner)
    for _ in range(2):
        answer = call(
            lane,
            "/oauth/userinfo/",
            headers={"Authorization": f"Bearer {world['token']}", "Host": "evil.example"},
        )
        assert answer[0] == 400  # DisallowedHost, from Django
    assert inner.calls == 2


def test_a_userinfo_failure_after_its_disclosure_is_the_lane_s_own_500(
    world, monkeypatch, settings
):
    """On PostgreSQL the claims' ledger entry commits by itself: whatever fails after it
    is answered by the lane, with the JSON Django's handler500 gives, never read again."""
    settings.DEBUG = False
    inner = Counting()
    lane = MachineLane(inner)
    userinfo(lane, world["token"])
    real = lane_module.userinfo_claims

    def fails_after(*args: Any) -> Any:
        real(*args)
        raise RuntimeError("after the disclosure")

    monkeypatch.setattr(lane_module, "userinfo_claims", fails_after)
    before = ledger_size()
    answer = userinfo(lane, world["token"])
    assert inner.calls == 1
    assert ledger_size() == before + 1
    monkeypatch.setattr(views, "userinfo_claims", fails_after)
    django = call(
        WSGIHandler(), "/oauth/userinfo/", headers={"Authorization": f"Bearer {world['token']}"}
    )
    assert (
        (answer[0], body(answer))
        == (django[0], body(django))
        == (
            500,
            {"error": "server_error", "error_description": "The request could not be completed."},
        )
    )
    assert answer[1]["Cache-Control"] == django[1]["Cache-Control"] == "no-store"


def test_one_statement_authenticates_and_reads_and_leaves_the_rest_to_django(world):
    """Without the token cache the lane reads the client and the token in one statement;
    a client it cannot plainly accept (unknown, suspended, another app's secret) is
    Django's to refuse, whatever the token."""
    inner = Counting()
    lane = MachineLane(inner)
    introspect(lane, world)
    with CaptureQueriesContext(connection) as queries:
        assert body(introspect(lane, world))["active"] is True
    assert inner.calls == 1
    assert len(queries) == 1
    unknown = {"Authorization": basic_auth("no-such-client", world["secret"])}
    assert introspect(lane, world, headers=unknown)[0] == 401
    assert inner.calls == 2
    Application.objects.filter(pk=world["app"].pk).update(status=AppStatus.SUSPENDED)
    assert introspect(lane, world)[0] == 401
    assert inner.calls == 3


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_lane_keeps_its_thread_s_connection_between_requests(world):
    """A lane answer keeps the thread's pooled connection for the next request (no
    hand-back and borrow); one kept longer than the pool would lend it unchecked, or one
    that saw an error, goes back to the pool at the next request's boundary."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's connections persist; the pool is PostgreSQL's")
    lane = MachineLane(Counting())
    connection.kept_until = 0.0  # nothing kept by an earlier test's requests
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
    try:
        assert userinfo(lane, world["token"])[0] == 200  # Django's: teaches the lane
        assert connection.connection is None  # Django's request handed it back
        assert userinfo(lane, world["token"])[0] == 200
        kept = connection.connection
        assert kept is not None
        borrowed = connection.pool.get_stats()["requests_num"]
        for _ in range(3):
            assert userinfo(lane, world["token"])[0] == 200
            assert connection.connection is kept
        assert connection.pool.get_stats()["requests_num"] == borrowed

        connection.kept_until = time.monotonic() - 0.01  # sat longer than RECENT_SECONDS
        close_old_connections()
        assert connection.connection is None
        assert userinfo(lane, world["token"])[0] == 200
        assert connection.pool.get_stats()["requests_num"] == borrowed + 1

        assert connection.connection is not None
        connection.errors_occurred = True  # as after a failed statement
        close_old_connections()
        assert connection.connection is None
    finally:
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
        connection.close()
