"""The Graph API through real OAuth tokens (tests/oauth_flow.py): what each endpoint
releases, withholds and refuses, and that every released datum is in the ledger."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from consentry.grants.actions import do_revoke_consent
from consentry.grants.models import Consent
from consentry.grants.permissions import fields_to_mask
from consentry.graph import limits
from consentry.oauth.models import AppStatus
from consentry.oauth.pairwise import (
    app_scoped_id,
    installer_scoped_ids,
    person_id_for,
    person_id_for_installer,
)
from consentry.oauth.validators import relay_address
from consentry.people.actions import do_add_friendship
from consentry.people.fields import FIELD_BIT
from consentry.people.models import Post
from tests.graph_fixtures import get, ledger_size, newest_entry, wait_for_fresh_minute
from tests.oauth_flow import make_app, obtain_token

BASIC = ["openid", "profile"]
NOT_FOUND = b'{"error":{"code":"not_found","message":"Not found.","status":404}}'


@pytest.fixture(autouse=True)
def _fresh_counters(settings):
    # Client secrets and passwords are hashed with argon2 in production; these tests make
    # many apps and people, so they use a fast hasher (the flow itself is unchanged).
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "consentry.oauth.hashers.ClientSecretHasher",
    ]
    cache.clear()  # rate-limit windows must not leak from one test into the next
    yield
    cache.clear()


def token(person, app, scopes, **kwargs) -> str:
    return obtain_token(Client(), person, app, scopes, **kwargs)["access_token"]


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body


# --- /v1/me ------------------------------------------------------------------------------


def test_me_releases_exactly_what_the_grant_covers_and_counts_the_rest(make_person):
    person = make_person(name="Ada", birthday=dt.date(1990, 1, 2), hometown="Delft")
    app, _ = make_app(permissions=["user_birthday"])
    raw = token(person, app, [*BASIC, "email", "user_birthday"])
    before = ledger_size()

    response = get(Client(), "/v1/me", raw, fields="name,email,birthday,hometown")

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "data": {
            "id": app_scoped_id(app.pk, person.pk),
            "name": "Ada",
            "email": person.email,
            "birthday": "1990-01-02",
        },
        "meta": {"withheld_fields": 1},
    }
    assert ledger_size() == before + 1
    entry = newest_entry()
    assert (entry.app_id, entry.actor_id, entry.endpoint) == (app.pk, person.pk, "/v1/me")
    assert entry.released == ((person.pk, fields_to_mask({"id", "name", "email", "birthday"})),)


def test_me_defaults_to_id_and_name(make_person):
    person = make_person(name="Bo")
    app, _ = make_app()
    response = get(Client(), "/v1/me", token(person, app, BASIC))
    assert response.json()["data"] == {"id": app_scoped_id(app.pk, person.pk), "name": "Bo"}


def test_me_gives_the_relay_address_when_the_person_chose_it(make_person):
    person = make_person()
    app, _ = make_app()
    raw = token(person, app, [*BASIC, "email"], email_choice="relay")
    data = get(Client(), "/v1/me", raw, fields="email").json()["data"]
    assert data["email"] == relay_address(app.pk, person.pk)
    assert person.email not in json.dumps(data)


def test_unticked_permission_is_withheld(make_person):
    person = make_person(birthday=dt.date(1980, 5, 6))
    app, _ = make_app(permissions=["user_birthday"])
    raw = token(person, app, [*BASIC, "user_birthday"], untick=["user_birthday"])
    body = get(Client(), "/v1/me", raw, fields="birthday").json()
    assert "birthday" not in body["data"]
    assert body["meta"] == {"withheld_fields": 1}


def test_review_needed_field_without_approval_is_withheld(make_person):
    """Approval withdrawn after the grant: the field stops flowing at once."""
    person = make_person(birthday=dt.date(1980, 5, 6))
    app, _ = make_app(permissions=["user_birthday"])
    raw = token(person, app, [*BASIC, "user_birthday"])
    assert "birthday" in get(Client(), "/v1/me", raw, fields="birthday").json()["data"]
    app.approved_permissions = []
    app.save(update_fields=["approved_permissions"])
    body = get(Client(), "/v1/me", raw, fields="birthday").json()
    assert "birthday" not in body["data"]
    assert body["meta"]["withheld_fields"] == 1


def test_likes_need_the_signed_agreement(make_person):
    person = make_person(likes=["jazz"])
    app, _ = make_app(permissions=["user_likes"])
    raw = token(person, app, [*BASIC, "user_likes"])
    assert get(Client(), "/v1/me", raw, fields="likes").json()["data"]["likes"] == ["jazz"]
    app.agreement_signed_at = None
    app.save(update_fields=["agreement_signed_at"])
    assert "likes" not in get(Client(), "/v1/me", raw, fields="likes").json()["data"]


def test_unknown_field_is_a_400_in_the_error_shape(make_person):
    app, _ = make_app()
    raw = token(make_person(), app, BASIC)
    assert_error(get(Client(), "/v1/me", raw, fields="name,phone"), 400, "invalid_request")


def test_each_call_records_consent_use(make_person):
    person = make_person()
    app, _ = make_app()
    raw = token(person, app, BASIC)
    long_ago = timezone.now() - dt.timedelta(days=30)
    Consent.objects.filter(person=person, application=app).update(
        last_used_at=long_ago, expires_at=long_ago + dt.timedelta(days=90)
    )
    assert get(Client(), "/v1/me", raw).status_code == 200
    consent = Consent.objects.get(person=person, application=app)
    assert consent.last_used_at > long_ago + dt.timedelta(days=29)
    assert consent.expires_at > timezone.now() + dt.timedelta(days=89)


# --- /v1/me/friends -----------------------------------------------------------------------


@pytest.fixture
def circle(make_person):
    """U with four friends: one who uses the app, one who opted in to share their
    birthday, one with neither, and one who uses the app but keeps birthday only_me."""
    app, _ = make_app(permissions=["user_birthday", "user_friends"])
    me = make_person(name="Me")
    user = make_person(name="User", birthday=dt.date(1991, 1, 1))
    sharer = make_person(
        name="Sharer", birthday=dt.date(1992, 2, 2), friend_share_mask=FIELD_BIT["birthday"]
    )
    neither = make_person(name="Neither", birthday=dt.date(1993, 3, 3))
    private = make_person(name="Private", birthday=dt.date(1994, 4, 4), audience_birthday="only_me")
    stranger = make_person(name="Stranger", birthday=dt.date(1995, 5, 5))
    for friend in (user, sharer, neither, private):
        do_add_friendship(me, friend)
    scopes = [*BASIC, "user_birthday"]
    for someone in (user, private, stranger):
        token(someone, app, scopes)
    raw = token(me, app, [*scopes, "user_friends"])
    return app, raw, me, user, sharer, neither, private, stranger


def test_friends_lists_those_who_use_the_app_or_opted_in(circle):
    app, raw, me, user, sharer, _neither, private, _stranger = circle
    before = ledger_size()

    response = get(Client(), "/v1/me/friends", raw, fields="name,birthday")

    assert response.status_code == 200
    body = response.json()
    by_person = {
        person_id_for(app.pk, entry["id"])
        or person_id_for_installer(app.pk, me.pk, entry["id"]): entry
        for entry in body["data"]
    }
    assert by_person == {
        user.pk: {"id": app_scoped_id(app.pk, user.pk), "name": "User", "birthday": "1991-01-01"},
        # Reached only through the opt-in: an id scoped to (app, this installer).
        sharer.pk: {
            "id": installer_scoped_ids(app.pk, me.pk, [sharer.pk])[0],
            "birthday": "1992-02-02",
        },
        private.pk: {"id": app_scoped_id(app.pk, private.pk), "name": "Private"},
    }
    # `neither` is withheld whole; Sharer's name and Private's birthday are withheld.
    assert body["meta"] == {"withheld_subjects": 1, "withheld_fields": 2}
    assert body["paging"] == {"next": None}
    assert "Neither" not in response.content.decode()
    assert ledger_size() == before + 1
    entry = newest_entry()
    assert entry.endpoint == "/v1/me/friends"
    assert (entry.app_id, entry.actor_id) == (app.pk, me.pk)
    assert set(entry.released) == {
        (user.pk, fields_to_mask({"id", "name", "birthday"})),
        (sharer.pk, fields_to_mask({"id", "birthday"})),
        (private.pk, fields_to_mask({"id", "name"})),
    }


def test_friend_whose_grant_expired_is_withheld_unless_opted_in(circle):
    app, raw, _me, user, *_ = circle
    Consent.objects.filter(person=user, application=app).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    ids = {e["id"] for e in get(Client(), "/v1/me/friends", raw, fields="birthday").json()["data"]}
    assert app_scoped_id(app.pk, user.pk) not in ids


def test_friend_email_is_never_released(make_person):
    app, _ = make_app(permissions=["user_friends"])
    me = make_person()
    friend = make_person(audience_email="public", friend_share_mask=FIELD_BIT["email"])
    do_add_friendship(me, friend)
    token(friend, app, [*BASIC, "email"])
    raw = token(me, app, [*BASIC, "email", "user_friends"])
    body = get(Client(), "/v1/me/friends", raw, fields="name,email").json()
    assert body["data"] == [{"id": app_scoped_id(app.pk, friend.pk), "name": friend.name}]
    assert friend.email not in json.dumps(body)
    assert body["meta"]["withheld_fields"] == 1


def test_friends_needs_user_friends(circle, make_person):
    app = circle[0]
    raw = token(make_person(), app, [*BASIC, "user_birthday"])
    response = get(Client(), "/v1/me/friends", raw)
    assert_error(response, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_friends_pagination_is_stable_and_complete(make_person):
    app, _ = make_app(permissions=["user_friends"])
    me = make_person()
    friends = [make_person(name=f"F{i}") for i in range(7)]
    for friend in friends:
        do_add_friendship(me, friend)
    for friend in friends[:5]:  # two friends do not use the app
        token(friend, app, BASIC)
    raw = token(me, app, [*BASIC, "user_friends"])

    def walk(limit: int) -> tuple[list[str], int]:
        seen, withheld, after = [], 0, None
        while True:
            params = {"limit": limit, **({"after": after} if after else {})}
            body = get(Client(), "/v1/me/friends", raw, **params).json()
            assert len(body["data"]) + body["meta"]["withheld_subjects"] <= limit
            seen += [entry["id"] for entry in body["data"]]
            withheld += body["meta"]["withheld_subjects"]
            after = body["paging"]["next"]
            if after is None:
                return seen, withheld

    first, withheld = walk(2)
    assert withheld == 2
    assert sorted(first) == sorted(app_scoped_id(app.pk, f.pk) for f in friends[:5])
    assert len(set(first)) == len(first)
    assert walk(2)[0] == first  # same order every time
    assert walk(3)[0] == first
    assert walk(5000)[0] == first


def test_cursor_is_bound_to_the_person_and_the_app(make_person):
    app, _ = make_app(permissions=["user_friends"])
    me, other = make_person(), make_person()
    for i in range(3):
        friend = make_person(name=f"G{i}")
        do_add_friendship(me, friend)
        do_add_friendship(other, friend)
        token(friend, app, BASIC)
    mine = token(me, app, [*BASIC, "user_friends"])
    theirs = token(other, app, [*BASIC, "user_friends"])
    cursor = get(Client(), "/v1/me/friends", mine, limit=1).json()["paging"]["next"]
    assert cursor
    assert get(Client(), "/v1/me/friends", mine, limit=1, after=cursor).status_code == 200
    response = get(Client(), "/v1/me/friends", theirs, limit=1, after=cursor)
    assert_error(response, 400, "invalid_request")
    assert_error(get(Client(), "/v1/me/friends", mine, after="garbage"), 400, "invalid_request")


@pytest.mark.parametrize("session_zone", [None, "Pacific/Apia", "Pacific/Kiritimati"])
def test_friends_dates_are_the_stored_dates_in_any_session_time_zone(make_person, session_zone):
    """A friend's birthday is the stored date as date.isoformat() gives it: years before
    1000, the first and last dates Django can store, and dates that a time zone skipped
    (Samoa's 2011-12-30, Kiribati's 1994-12-31), whatever the PostgreSQL session's
    TimeZone (the date must never pass through a timestamp with time zone)."""
    if session_zone is not None and connection.vendor != "postgresql":
        pytest.skip("a session time zone is PostgreSQL's")
    app, _ = make_app(permissions=["user_birthday", "user_friends"])
    me = make_person(name="Me")
    days = [
        dt.date(1, 1, 1),
        dt.date(999, 12, 31),
        dt.date(1994, 12, 31),
        dt.date(2011, 12, 30),
        dt.date(9999, 12, 31),
        None,
    ]
    friends = [make_person(name=f"F{i}", birthday=day) for i, day in enumerate(days)]
    scopes = [*BASIC, "user_birthday"]
    for friend in friends:
        do_add_friendship(me, friend)
        token(friend, app, scopes)
    raw = token(me, app, [*scopes, "user_friends"])
    expected = {
        app_scoped_id(app.pk, f.pk): {"birthday": None if day is None else day.isoformat()}
        for f, day in zip(friends, days, strict=True)
    }
    if session_zone is not None:
        with connection.cursor() as cursor:
            cursor.execute(f"SET TIME ZONE '{session_zone}'")
    try:
        body = get(Client(), "/v1/me/friends", raw, fields="birthday").json()
        skipped = app_scoped_id(app.pk, friends[3].pk)  # 2011-12-30
        person = get(Client(), f"/v1/people/{skipped}", raw, fields="birthday")
    finally:
        if session_zone is not None:
            with connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'UTC'")
    got = {entry.pop("id"): entry for entry in body["data"]}
    assert got == expected
    assert person.json()["data"]["birthday"] == "2011-12-30"


# --- /v1/people/{id} ----------------------------------------------------------------------


def test_people_by_id_for_a_listed_friend_matches_the_friends_list(circle):
    app, raw, _me, user, *_ = circle
    response = get(
        Client(), f"/v1/people/{app_scoped_id(app.pk, user.pk)}", raw, fields="name,birthday"
    )
    assert response.json() == {
        "data": {"id": app_scoped_id(app.pk, user.pk), "name": "User", "birthday": "1991-01-01"},
        "meta": {"withheld_fields": 0},
    }
    entry = newest_entry()
    assert entry.endpoint == "/v1/people/{id}"
    assert entry.released == ((user.pk, fields_to_mask({"id", "name", "birthday"})),)


def test_people_by_id_for_oneself_is_like_me(circle):
    app, raw, me, *_ = circle
    data = get(Client(), f"/v1/people/{app_scoped_id(app.pk, me.pk)}", raw).json()["data"]
    assert data == {"id": app_scoped_id(app.pk, me.pk), "name": "Me"}


def test_unknown_and_forbidden_people_are_the_same_404(circle):
    app, raw, _me, _user, _sharer, neither, _private, stranger = circle
    before = ledger_size()
    paths = [
        f"/v1/people/{app_scoped_id(app.pk, stranger.pk)}",  # uses the app, not a friend
        f"/v1/people/{app_scoped_id(app.pk, neither.pk)}",  # a friend who is withheld
        f"/v1/people/{app_scoped_id(app.pk, 10**9)}",  # nobody
        "/v1/people/garbage",
        f"/v1/people/{stranger.email}",  # no lookup by email
        f"/v1/people/{stranger.pk}",  # no global ids
        "/v1/people",
        "/v1/search",
        "/v1/me/friends/extra",
        "/v1/",
    ]
    for path in paths:
        response = get(Client(), path, raw, fields="name")
        assert response.status_code == 404, path
        assert response.content == NOT_FOUND, path
    assert ledger_size() == before


def test_id_of_app_a_is_unknown_to_app_b(circle, make_person):
    app_a, _raw, me, user, *_ = circle
    app_b, _ = make_app(permissions=["user_friends"])
    token(user, app_b, BASIC)
    raw_b = token(me, app_b, [*BASIC, "user_friends"])
    # The same friend is visible to app B under B's id...
    assert get(Client(), f"/v1/people/{app_scoped_id(app_b.pk, user.pk)}", raw_b).status_code == 200
    # ...but A's id for them means nothing to B.
    response = get(Client(), f"/v1/people/{app_scoped_id(app_a.pk, user.pk)}", raw_b)
    assert response.content == NOT_FOUND


# --- Tokens and apps that may no longer act -------------------------------------------------


def test_token_after_consent_revocation_is_401(make_person):
    person = make_person()
    app, _ = make_app()
    raw = token(person, app, BASIC)
    assert get(Client(), "/v1/me", raw).status_code == 200
    do_revoke_consent(Consent.objects.get(person=person, application=app))
    response = get(Client(), "/v1/me", raw)
    assert_error(response, 401, "invalid_token")
    assert response["WWW-Authenticate"] == 'Bearer realm="consentry", error="invalid_token"'


def test_expired_grant_is_401(make_person):
    person = make_person()
    app, _ = make_app()
    raw = token(person, app, BASIC)
    Consent.objects.filter(person=person).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert_error(get(Client(), "/v1/me", raw), 401, "invalid_token")


def test_missing_or_malformed_token_is_401(make_person):
    response = get(Client(), "/v1/me", None)
    assert_error(response, 401, "invalid_token")
    assert response["WWW-Authenticate"] == 'Bearer realm="consentry"'
    assert_error(get(Client(), "/v1/me", "not-a-token"), 401, "invalid_token")
    basic = Client().get("/v1/me", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert_error(basic, 401, "invalid_token")


@pytest.mark.parametrize("status", [AppStatus.SUSPENDED, AppStatus.BANNED])
def test_suspended_or_banned_app_gets_401(make_person, status):
    person = make_person()
    app, _ = make_app()
    raw = token(person, app, BASIC)
    app.status = status
    app.save(update_fields=["status"])
    assert_error(get(Client(), "/v1/me", raw), 401, "invalid_token")


def test_development_app_only_for_members(make_person):
    member = make_person()
    app, _ = make_app(live=False, members=[member])
    raw = token(member, app, BASIC)
    assert get(Client(), "/v1/me", raw).status_code == 200
    app.members.remove(member)
    assert_error(get(Client(), "/v1/me", raw), 401, "invalid_token")


# --- Posts ----------------------------------------------------------------------------------


def test_own_posts_need_user_posts_and_page_newest_first(make_person):
    person = make_person()
    other = make_person()
    now = timezone.now()
    for i in range(5):
        Post.objects.create(
            author=person, message=f"post {i}", created_at=now - dt.timedelta(hours=i)
        )
    Post.objects.create(author=other, message="not mine")
    app, _ = make_app(permissions=["user_posts"])
    assert_error(get(Client(), "/v1/me/posts", token(other, app, BASIC)), 403, "insufficient_scope")

    raw = token(person, app, [*BASIC, "user_posts"])
    messages, after = [], None
    while True:
        body = get(
            Client(), "/v1/me/posts", raw, limit=2, **({"after": after} if after else {})
        ).json()
        messages += [p["message"] for p in body["data"]]
        after = body["paging"]["next"]
        if after is None:
            break
    assert messages == [f"post {i}" for i in range(5)]
    assert newest_entry().released == ((person.pk, fields_to_mask({"posts"})),)


# --- Limits (rule 4) -------------------------------------------------------------------------


def test_token_rate_limit_is_429_with_retry_after(make_person, settings):
    settings.GRAPH_RATE_TOKEN_PER_MINUTE = 2
    app, _ = make_app()
    raw = token(make_person(), app, BASIC)
    wait_for_fresh_minute()
    assert [get(Client(), "/v1/me", raw).status_code for _ in range(2)] == [200, 200]
    before = ledger_size()
    response = get(Client(), "/v1/me", raw)
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert ledger_size() == before


def test_app_rate_limit_override_counts_all_tokens_of_the_app(make_person):
    app, _ = make_app()
    app.limits = {"requests_per_minute": 3}
    app.save(update_fields=["limits"])
    tokens = [token(make_person(), app, BASIC) for _ in range(2)]
    wait_for_fresh_minute()
    codes = [get(Client(), "/v1/me", tokens[i % 2]).status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]


def test_daily_subject_volume_refuses_a_page_that_would_pass_it(circle):
    app, raw, *_ = circle
    app.limits = {"subjects_per_day": 4}
    app.save(update_fields=["limits"])
    fields = "name,birthday"
    assert get(Client(), "/v1/me/friends", raw, fields=fields).status_code == 200  # 3 subjects
    response = get(Client(), "/v1/me/friends", raw, fields=fields)  # 3 more would make 6
    assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    assert get(Client(), "/v1/me", raw).status_code == 200  # 1 more fits


def test_harvest_detection_throttle_is_enforced(make_person):
    app, _ = make_app()
    raw = token(make_person(), app, BASIC)
    limits.throttle_app(app.pk, 600)
    response = get(Client(), "/v1/me", raw)
    assert_error(response, 429, "rate_limited")
    assert 590 <= int(response["Retry-After"]) <= 600
    limits.lift_throttle(app.pk)
    assert get(Client(), "/v1/me", raw).status_code == 200


# --- The ledger gate -------------------------------------------------------------------------


def test_ledger_failure_means_no_data_leaves(circle, monkeypatch):
    app, raw, _me, user, *_ = circle
    before = ledger_size()

    def broken(**kwargs):
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr("consentry.graph.access.record_disclosure", broken)
    for path in ("/v1/me", "/v1/me/friends", f"/v1/people/{app_scoped_id(app.pk, user.pk)}"):
        response = get(Client(), path, raw, fields="name,birthday")
        body = assert_error(response, 500, "server_error")
        assert "User" not in response.content.decode()
        assert "Me" not in json.dumps(body).replace("Method", "")
    assert ledger_size() == before


# --- Errors and documentation ------------------------------------------------------------------


def test_every_error_has_the_one_shape(circle):
    raw = circle[1]
    assert_error(
        Client().post("/v1/me", HTTP_AUTHORIZATION=f"Bearer {raw}"), 405, "method_not_allowed"
    )
    assert_error(get(Client(), "/v1/me/friends", raw, limit=0), 400, "invalid_request")
    assert_error(get(Client(), "/v1/me/friends", raw, limit=5001), 400, "invalid_request")
    assert_error(get(Client(), "/v1/me/friends", raw, limit="many"), 400, "invalid_request")
    assert_error(Client().post("/v1/nowhere"), 404, "not_found")


def test_openapi_document_and_docs_are_served():
    spec = Client().get("/v1/openapi.json").json()
    assert {"/v1/me", "/v1/me/friends", "/v1/me/posts", "/v1/people/{app_scoped_id}"} <= set(
        spec["paths"]
    )
    params = {p["name"] for p in spec["paths"]["/v1/me/friends"]["get"]["parameters"]}
    assert params == {"fields", "limit", "after"}
    docs = Client().get("/v1/docs")
    assert docs.status_code == 200
    assert b"/v1/openapi.json" in docs.content
