"""`/v1/me` and `/v1/me/friends` on the machine lane (consentry/graph/lane.py): the plain
GET answered without Django's handler, with Django's answer, its ledger entry and its
rate-limit count; everything else handed to Django before anything is counted, and
answered there exactly as before (issue "Performance")."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from consentry.graph import limits
from consentry.graph.cursor import decode_cursor, encode_cursor
from consentry.ledger.api import ledger_size, read_entry, verify_ledger
from consentry.ops import metrics
from consentry.people.actions import do_add_friendship
from consentry.web.lane import MachineLane
from tests.graph_fixtures import direct_app, direct_consent, direct_token, wait_for_fresh_minute
from tests.lane_helpers import Counting, Response, call, keep_the_test_connection  # noqa: F401

pytestmark = pytest.mark.django_db

BASIC = ["openid", "profile", "user_birthday"]
FRIENDS = [*BASIC, "user_friends"]


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # People are made with passwords, hashed with argon2 in production: too slow for
    # worlds built per test (the read path never checks a password).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def build_world(make_person: Any, friends: int = 5, **app: Any) -> dict[str, Any]:
    cache.clear()
    application = direct_app(approved=["user_birthday", "user_friends"], **app)
    me = make_person(name="Ada Lane", birthday="1990-05-17")
    pals = [make_person(name=f"Pal {i}", birthday=f"1991-01-{i + 1:02d}") for i in range(friends)]
    for pal in pals:
        do_add_friendship(me, pal)
    for pal in pals[::2]:  # every other friend uses the app too; the rest are withheld
        direct_consent(pal.pk, application, BASIC)
    consent = direct_consent(me.pk, application, FRIENDS)
    narrow = direct_consent(make_person().pk, application, BASIC)
    return {
        "app": application,
        "me": me,
        "token": direct_token(consent, FRIENDS),
        "no_friends_scope": direct_token(narrow, BASIC),
    }


@pytest.fixture
def world(make_person: Any) -> dict[str, Any]:
    return build_world(make_person)


@pytest.fixture
def roomy_world(make_person: Any) -> dict[str, Any]:
    """A world whose app may call far more often than the defaults allow."""
    return build_world(
        make_person, limits={"requests_per_minute": 100_000, "token_requests_per_minute": 100_000}
    )


def graph(app: Any, path: str, token: str | None, query: str = "", **kw: Any) -> Response:
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    return call(app, path, query=query, headers=headers, **kw)


def comparable(response: Response, world: dict[str, Any]) -> tuple[int, Any]:
    """Status and body, the cursor (random by design) replaced by the position it holds."""
    status, _, content = response
    body = json.loads(content)
    cursor = (body.get("paging") or {}).get("next")
    if cursor:
        body["paging"]["next"] = decode_cursor(
            cursor, "friends", world["app"].pk, world["me"].pk, 1
        )
    return status, body


def learnt(world: dict[str, Any]) -> tuple[Counting, MachineLane]:
    wait_for_fresh_minute()  # the tests compare rate counters of one minute window
    inner = Counting()
    lane = MachineLane(inner)
    for path in ("/v1/me", "/v1/me/friends"):
        assert graph(lane, path, world["token"])[0] == 200
    assert inner.calls == 2
    return inner, lane


def token_count(world: dict[str, Any], token: str) -> int:
    from consentry.oauth.models import AccessToken

    token_id = AccessToken.objects.get(token=token).pk
    number, _ = limits._window(time.time(), limits.MINUTE)
    return limits.counted(f"graph:rate:token:{token_id}:{number}")


def test_me_and_friends_are_answered_by_the_lane_with_django_s_answer(world):
    inner, lane = learnt(world)
    before = ledger_size()
    for path, query in (
        ("/v1/me", ""),
        ("/v1/me", "fields=name,birthday"),
        ("/v1/me/friends", "fields=name,birthday&limit=2"),
        ("/v1/me/friends", "fields=id%2Cname"),
    ):
        django = graph(WSGIHandler(), path, world["token"], query)
        answer = graph(lane, path, world["token"], query)
        assert comparable(answer, world) == comparable(django, world)
        same = {k: v for k, v in django[1].items() if k not in ("X-Request-ID", "Content-Length")}
        assert {k: v for k, v in answer[1].items() if k in same} == same
        assert answer[1]["Content-Length"] == str(len(answer[2]))
        assert answer[1]["Cache-Control"] == "no-store"
    assert inner.calls == 2  # none of the eight reached Django through the lane
    assert ledger_size() == before + 8  # every answer is ledgered, lane or not
    entry = read_entry(before + 7)
    assert (entry.app_id, entry.actor_id, entry.endpoint) == (
        world["app"].pk,
        world["me"].pk,
        "/v1/me/friends",
    )
    assert len(entry.released) == 3  # the friends who use the app


def test_a_cursor_from_the_lane_pages_on(world):
    _inner, lane = learnt(world)
    first = json.loads(graph(lane, "/v1/me/friends", world["token"], "limit=2")[2])
    after = first["paging"]["next"]
    assert after
    rest = graph(lane, "/v1/me/friends", world["token"], f"limit=100&after={after}")
    assert rest[0] == 200
    pages = first["data"] + json.loads(rest[2])["data"]
    whole = json.loads(graph(lane, "/v1/me/friends", world["token"])[2])["data"]
    assert pages == whole


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/me", "limt=3"),  # unknown parameter
        ("/v1/me", "fields=name&fields=bogus"),  # repeated
        ("/v1/me", "fields="),  # blank
        ("/v1/me", "fields=bogus"),  # unknown field
        ("/v1/me", "fields=name%00"),  # a control character
        ("/v1/me", "fields=n%C3%A4me"),  # not ASCII
        ("/v1/me", "fields=" + "name," * 50),  # longer than the view takes
        ("/v1/me/friends", "limit=0"),
        ("/v1/me/friends", "limit=5001"),
        ("/v1/me/friends", "limit=01"),
        ("/v1/me/friends", "limit=%2B1"),
        ("/v1/me/friends", "limit=many"),
        ("/v1/me/friends", "after=bogus"),
        ("/v1/me/friends", "after="),
    ],
)
def test_unusual_queries_get_django_s_own_answer_counted_once(world, path, query):
    inner, lane = learnt(world)
    counted, before = token_count(world, world["token"]) or 0, ledger_size()
    expected = graph(WSGIHandler(), path, world["token"], query)
    django_counted, django_ledgered = (
        token_count(world, world["token"]) - counted,
        ledger_size() - before,
    )
    counted, before = token_count(world, world["token"]), ledger_size()
    answer = graph(lane, path, world["token"], query)
    assert inner.calls == 3
    assert comparable(answer, world) == comparable(expected, world)
    assert token_count(world, world["token"]) - counted == django_counted
    assert ledger_size() - before == django_ledgered == (1 if answer[0] == 200 else 0)


def test_another_app_s_cursor_goes_to_django_and_is_refused(world, make_person):
    other = build_world(make_person)
    inner, lane = learnt(world)
    foreign = encode_cursor("friends", other["app"].pk, other["me"].pk, (1,))
    answer = graph(lane, "/v1/me/friends", world["token"], f"after={foreign}")
    assert answer[0] == 400
    assert json.loads(answer[2])["error"]["code"] == "invalid_request"
    assert inner.calls == 3


def test_requests_that_are_not_a_plain_get_go_to_django(world):
    inner, lane = learnt(world)
    token = world["token"]
    cases = [
        (graph(lane, "/v1/me", None), 401),
        (graph(lane, "/v1/me", "not-a-token"), 401),
        (graph(lane, "/v1/me", None, headers={"Authorization": f"Basic {token}"}), 401),
        (graph(lane, "/v1/me", None, headers={"Authorization": f"Bearer  {token}"}), 401),
        (graph(lane, "/v1/me", token, method="POST"), 405),
        (graph(lane, "/v1/me", token, method="HEAD"), 200),
        (graph(lane, "/v1/me", token, body=b"x=1"), 200),
        (graph(lane, "/v1/me/", token), 404),
        (graph(lane, "/v1/me/friends", world["no_friends_scope"]), 403),
    ]
    assert [status for (status, _, _), _ in cases] == [expected for _, expected in cases]
    assert inner.calls == 2 + len(cases)
    assert graph(lane, "/v1/me", token, headers={"Authorization": f"bearer {token}"})[0] == 200
    assert inner.calls == 2 + len(cases)  # the scheme is case-insensitive (RFC 6750 / ninja)


def test_rate_limits_count_a_request_once_and_django_answers_the_429(make_person):
    world = build_world(make_person, limits={"token_requests_per_minute": 4})
    inner, lane = learnt(world)  # two requests
    assert graph(lane, "/v1/me", world["token"])[0] == 200
    assert graph(lane, "/v1/me/friends", world["token"])[0] == 200
    assert inner.calls == 2
    refused = graph(lane, "/v1/me", world["token"])
    assert refused[0] == 429
    assert json.loads(refused[2])["error"]["code"] == "rate_limited"
    assert int(refused[1]["Retry-After"]) >= 1
    assert inner.calls == 3  # Django answered it...
    assert token_count(world, world["token"]) == 5  # ...without counting it again


def test_the_throttle_of_harvest_detection_is_django_s_429(world):
    inner, lane = learnt(world)
    limits.throttle_app(world["app"].pk, 600)
    refused = graph(lane, "/v1/me", world["token"])
    assert refused[0] == 429
    assert 590 <= int(refused[1]["Retry-After"]) <= 600
    limits.lift_throttle(world["app"].pk)
    assert graph(lane, "/v1/me", world["token"])[0] == 200
    assert inner.calls == 3


def test_a_ledger_failure_is_the_view_s_500_and_no_data_leaves(world, monkeypatch):
    inner, lane = learnt(world)
    before = ledger_size()
    counted = token_count(world, world["token"])

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr("consentry.graph.access.record_disclosure", broken)
    for path in ("/v1/me", "/v1/me/friends"):
        expected = graph(WSGIHandler(), path, world["token"], "fields=name,birthday")
        answer = graph(lane, path, world["token"], "fields=name,birthday")
        assert (answer[0], answer[2]) == (expected[0], expected[2])
        assert answer[0] == 500
        assert json.loads(answer[2])["error"]["code"] == "server_error"
        assert b"Ada" not in answer[2]
        assert b"Pal" not in answer[2]
    assert inner.calls == 2  # counted and failed in the lane: answered there
    assert ledger_size() == before
    assert token_count(world, world["token"]) == counted + 4


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/v1/me", "/v1/me/friends"])
def test_a_failure_after_the_ledger_write_is_answered_once(make_person, monkeypatch, path):
    """Whatever fails after the entry is written (on PostgreSQL it has committed by
    then): the lane answers the view's 500 itself and leaves exactly the ledger Django
    alone leaves, never reading a second time."""
    world = build_world(make_person)
    inner, lane = learnt(world)

    def broken(*args: Any) -> None:
        raise RuntimeError("detection down")

    monkeypatch.setattr("consentry.graph.access.note_release", broken)
    before = ledger_size()
    expected = graph(WSGIHandler(), path, world["token"])
    by_django = ledger_size() - before
    answer = graph(lane, path, world["token"])
    assert (answer[0], answer[2]) == (expected[0], expected[2])
    assert answer[0] == 500
    assert inner.calls == 2
    assert ledger_size() - before == 2 * by_django
    assert by_django == (1 if connection.vendor == "postgresql" else 0)


def test_a_get_that_declares_a_body_goes_to_django_unread(world):
    """A client may declare a body and never send it: reading it would hold the thread
    (one per process on SQLite), so the lane leaves it unread, as Django does."""
    inner, lane = learnt(world)

    class Unsent(io.BytesIO):
        def read(self, *args: Any) -> bytes:
            raise AssertionError("the body of a GET was read")

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/v1/me",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": Unsent(),
        "CONTENT_LENGTH": "5",
        "HTTP_AUTHORIZATION": f"Bearer {world['token']}",
    }
    seen: list[str] = []
    body = b"".join(lane(environ, lambda status, headers, *exc: seen.append(status)))
    assert seen == ["200 OK"]
    assert json.loads(body)["data"]["id"]
    assert inner.calls == 3


def test_a_failure_after_the_disclosure_is_answered_by_the_lane_alone(world, monkeypatch):
    inner, lane = learnt(world)
    before = ledger_size()

    def broken(body: Any) -> Any:
        raise RuntimeError("detection down")

    monkeypatch.setattr("consentry.graph.lane.detection.observe_response", broken)
    answer = graph(lane, "/v1/me", world["token"])
    assert answer[0] == 500
    assert json.loads(answer[2]) == {
        "error": {
            "code": "server_error",
            "message": "The request could not be completed.",
            "status": 500,
        }
    }
    assert inner.calls == 2  # never read a second time
    assert ledger_size() == before + 1


def test_withheld_data_is_counted_as_through_django(world):
    _inner, lane = learnt(world)
    subjects = metrics.WITHHELD_SUBJECTS._value.get()
    fields = metrics.WITHHELD_FIELDS._value.get()
    body = json.loads(graph(lane, "/v1/me/friends", world["token"], "fields=name,likes")[2])
    assert body["meta"]["withheld_subjects"] == 2
    assert metrics.WITHHELD_SUBJECTS._value.get() == subjects + 2
    assert metrics.WITHHELD_FIELDS._value.get() == fields + body["meta"]["withheld_fields"] > fields


PIECES = st.sampled_from(
    [
        "fields=name",
        "fields=id,name,birthday",
        "fields=id%2Cbirthday",
        "fields=name,+birthday",
        "fields=",
        "fields=bogus",
        "fields=%20name",
        "limit=1",
        "limit=3",
        "limit=5000",
        "limit=0",
        "limit=007",
        "limit=1.0",
        "after=",
        "after=AAAA",
        "limt=2",
        "",
        "&",
        "fields",
    ]
)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(PIECES, max_size=4), st.sampled_from(["/v1/me", "/v1/me/friends"]))
def test_any_query_gets_the_answer_django_gives(roomy_world, pieces, path):
    """Lane or Django, the same status and body for any mix of good and bad parameters."""
    world = roomy_world
    _inner, lane = learnt(world)
    query = "&".join(pieces)
    expected = graph(WSGIHandler(), path, world["token"], query)
    answer = graph(lane, path, world["token"], query)
    assert comparable(answer, world) == comparable(expected, world)


@pytest.mark.django_db(transaction=True)
def test_reads_from_many_threads_ledger_every_answer_in_a_verifiable_tree(make_person):
    """On PostgreSQL each read's entry commits alone (no transaction around the read); on
    SQLite in the read's transaction. Either way: one dense, verifiable entry per 200."""
    world = build_world(make_person, friends=8)
    lane = MachineLane(WSGIHandler())
    graph(lane, "/v1/me", world["token"])
    graph(lane, "/v1/me/friends", world["token"])
    before = ledger_size()
    statuses: list[int] = []

    def read(n: int) -> None:
        try:
            for i in range(6):
                path = "/v1/me" if (n + i) % 2 else "/v1/me/friends"
                statuses.append(graph(lane, path, world["token"], "fields=name,birthday")[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=read, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 24
    assert ledger_size() == before + 24
    assert verify_ledger().ok


@pytest.mark.parametrize("cached", [False, True])
def test_me_reads_the_profile_with_the_token_unless_the_token_is_cached(world, settings, cached):
    """Without a token cache the token's query also reads the requested profile columns
    (one statement less); with one, the facts come from the cache and the read fetches
    the profile itself. The same answer either way."""
    from django.test.utils import CaptureQueriesContext

    settings.TOKEN_CACHE_SECONDS = 60 if cached else 0
    _inner, lane = learnt(world)
    query = "fields=name,birthday,likes"
    expected = graph(WSGIHandler(), "/v1/me", world["token"], query)
    graph(lane, "/v1/me", world["token"], query)  # fills the cache when there is one
    with CaptureQueriesContext(connection) as queries:
        answer = graph(lane, "/v1/me", world["token"], query)
    assert comparable(answer, world) == comparable(expected, world)
    assert json.loads(answer[2])["data"]["name"] == "Ada Lane"
    profile_reads = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "name"')
    ]
    token_reads = [q["sql"] for q in queries.captured_queries if "token_checksum" in q["sql"]]
    assert len(profile_reads) == (1 if cached else 0)
    assert len(token_reads) == (0 if cached else 1)
