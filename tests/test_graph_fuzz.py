"""Hostile input against the Graph API: schemathesis generates requests from
/v1/openapi.json (valid and invalid) and sends them with a real access token; no answer
may be a 5xx or break the documented schema. A CI-sized run (a few dozen examples per
operation); docs/scaling.md gives the figures of a longer run (CONSENTRY_FUZZ_EXAMPLES).

Then the cases the founders list by name, on every endpoint: NUL bytes, lone
surrogates, right-to-left marks, huge and negative limits, repeated parameters, invalid
cursors, malformed and huge headers: a clear 4xx in the one error shape."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import date

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis import checks

from consentry.people.models import Friendship, Person, Post
from tests.graph_fixtures import direct_app, direct_consent, direct_token

ALL = [
    "openid",
    "profile",
    "email",
    "user_birthday",
    "user_hometown",
    "user_location",
    "user_relationships",
    "user_likes",
    "user_posts",
    "user_friends",
]
EXAMPLES = int(os.environ.get("CONSENTRY_FUZZ_EXAMPLES", "25"))

schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", get_wsgi_application())


@pytest.fixture(autouse=True)
def keep_test_connection() -> Iterator[None]:
    """Django's WSGI handler closes the database connection after each request, which
    would end the test's transaction; Django's own test client disconnects the same
    signal handlers while it calls the app."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def token(db: None) -> str:
    """A real access token of a person with friends and posts, every permission granted.
    (People are inserted directly: hashing passwords would cost more than the fuzzing.)"""
    tag = secrets.token_hex(4)
    me, *friends = Person.objects.bulk_create(
        [
            Person(
                email=f"fuzz{i}.{tag}@example.test",
                name=f"Fuzz {i}",
                birthday=date(1990, 2, 3),
                hometown="Utrecht \u202e",
                likes=["tea"],
                friend_share_mask=0xFFFF,
                password="!",
            )
            for i in range(4)
        ]
    )
    app = direct_app(approved=ALL)
    Friendship.objects.bulk_create(
        [Friendship(person=me, friend=f) for f in friends]
        + [Friendship(person=f, friend=me) for f in friends]
    )
    for friend in friends:
        direct_consent(friend.pk, app, ALL)
    Post.objects.bulk_create([Post(author=me, message=f"post {i} \u202e") for i in range(3)])
    return direct_token(direct_consent(me.pk, app, ALL), ALL)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_schemathesis_finds_no_server_error_and_no_schema_break(case, token: str) -> None:
    # Every built-in check but "schema-valid data is accepted": `fields` and `after` are
    # free strings in the schema, yet only known field names and cursors this server
    # issued are valid, which the schema cannot list; those get a documented 400.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[checks.positive_data_acceptance],
    )


# --- The named hostile inputs --------------------------------------------------------------------

ENDPOINTS = ["/v1/me", "/v1/me/friends", "/v1/me/posts", "/v1/people/abc"]
# Raw query strings: a lone surrogate reaches a server as invalid UTF-8 (%ED%A0%80).
HOSTILE_QUERIES = [
    "fields=name%00",
    "fields=%ED%A0%80",
    "fields=%E2%80%AEname",
    "fields=" + "x" * 100_000,
    "fields=name&fields=email&fields=name",
    "fields=%FF%FE",
    "limit=-1",
    "limit=99999999999999999999999",
    "limit=1e3",
    "limit=%00",
    "limit=1&limit=2",
    "after=%00",
    "after=not-a-cursor",
    "after=%ED%A0%BD",
    "after=" + "A" * 10_000,
    "limt=5",
    "%00=1",
    "&&&=&",
]


def _check(response: object) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    assert status < 500, status
    if status >= 400:
        body = response.json()  # type: ignore[attr-defined]
        assert set(body) == {"error"}
        assert set(body["error"]) >= {"code", "message", "status"}
        assert body["error"]["status"] == status


@pytest.mark.django_db
def test_hostile_queries_get_a_clear_4xx_or_a_normal_answer(client: Client, token: str) -> None:
    for path in ENDPOINTS:
        for query in HOSTILE_QUERIES:
            response = client.get(f"{path}?{query}", HTTP_AUTHORIZATION=f"Bearer {token}")
            _check(response)


@pytest.mark.django_db
def test_hostile_headers_and_bodies_get_a_clear_4xx(client: Client, token: str) -> None:
    for path in [*ENDPOINTS, "/v1/people/\u202e\x00x", "/v1/%ff%fe"]:
        _hostile_headers(client, token, path)


def _hostile_headers(client: Client, token: str, path: str) -> None:
    for header in (
        "Bearer " + "A" * 20_000,
        "Bearer \x00",
        "Bearer \u202etoken",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        f"Bearer {token} {token}",
    ):
        _check(client.get(path, HTTP_AUTHORIZATION=header))
    _check(client.post(path, b"{not json", content_type="application/json"))
    _check(client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="\x00"))
