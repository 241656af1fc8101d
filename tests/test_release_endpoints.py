"""Random small worlds through the real Graph API views: every datum of every response
is checked against the independent oracle of the release rule (tests/release_oracle.py),
and every released datum against the ledger entry the call wrote.

Each example builds its world inside a savepoint that is rolled back afterwards, so
hundreds of worlds run in seconds on SQLite and on PostgreSQL. Tokens are made directly
in the database here (the OAuth flow per world would dominate the run time); the endpoint
tests in test_graph_api.py use real tokens from the OAuth flow.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta

from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.grants.permissions import fields_to_mask
from consentry.ledger.api import read_entry
from consentry.oauth.pairwise import app_scoped_id, person_id_for, person_id_for_installer
from consentry.oauth.validators import relay_address
from consentry.people.models import Friendship, Person
from tests.graph_fixtures import (
    direct_app,
    direct_consent,
    direct_token,
    get,
    ledger_size,
)
from tests.release_oracle import (
    ALL_PERMISSIONS,
    FIELD_PERMISSION,
    NEEDS_REVIEW,
    PROFILE_ORDER,
    Situation,
    expected_release,
)

GRAPH = ("id", *(f for f in FIELD_PERMISSION if f != "posts"))
AUDIENCES = ("public", "friends", "only_me")
STATES = ("none", "active", "active", "revoked", "expired")
_emails = itertools.count()


@dataclass
class PersonSpec:
    audience: dict[str, str]
    share_mask: int
    consent: str  # none / active / revoked / expired
    granted: set[str]
    revoked: set[str]
    relay: bool


@dataclass
class World:
    people: list[PersonSpec]
    friends: set[tuple[int, int]]
    status: str
    approved: set[str]
    agreement: bool
    member: bool
    token_scope: set[str]
    requests: list[tuple[str, int, frozenset[str]]]  # (endpoint, target/limit, fields)


def _bits(n: int, values: tuple[str, ...]) -> st.SearchStrategy[set[str]]:
    return st.integers(0, 2 ** len(values) - 1).map(
        lambda b: {v for i, v in enumerate(values) if b >> i & 1}
    )


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n = draw(st.integers(2, 5))
    people = []
    for _ in range(n):
        code = draw(st.integers(0, 3 ** len(PROFILE_ORDER) - 1))
        audience = {}
        for name in PROFILE_ORDER:
            code, digit = divmod(code, 3)
            audience[name] = AUDIENCES[digit]
        people.append(
            PersonSpec(
                audience=audience,
                share_mask=draw(st.integers(0, 2 ** len(PROFILE_ORDER) - 1)),
                consent=draw(st.sampled_from(STATES)),
                granted=draw(_bits(len(ALL_PERMISSIONS), ALL_PERMISSIONS)),
                revoked=draw(_bits(len(ALL_PERMISSIONS), ALL_PERMISSIONS)),
                relay=draw(st.booleans()),
            )
        )
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    friends = {
        p
        for p, on in zip(
            pairs,
            draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs))),
            strict=True,
        )
        if on
    }
    viewer_grant = people[0].granted - people[0].revoked
    token_scope = draw(
        st.one_of(
            _bits(len(ALL_PERMISSIONS), ALL_PERMISSIONS).map(lambda s: s & viewer_grant),
            _bits(len(ALL_PERMISSIONS), ALL_PERMISSIONS),
        )
    )
    fields = _bits(len(GRAPH), GRAPH).map(frozenset)
    requests = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("me"), st.just(0), fields),
                st.tuples(st.just("friends"), st.integers(1, 4), fields),
                st.tuples(st.just("person"), st.integers(-1, n - 1), fields),
            ),
            min_size=1,
            max_size=3,
        )
    )
    return World(
        people=people,
        friends=friends,
        status=draw(
            st.sampled_from(["live", "live", "live", "development", "suspended", "banned"])
        ),
        approved=draw(_bits(len(NEEDS_REVIEW), tuple(sorted(NEEDS_REVIEW)))),
        agreement=draw(st.booleans()),
        member=draw(st.booleans()),
        token_scope=token_scope,
        requests=requests,
    )


def _active(spec: PersonSpec) -> set[str]:
    return spec.granted - spec.revoked if spec.consent == "active" else set()


def _situation(world: World, subject: int) -> Situation:
    viewer = world.people[0]
    friend = (0, subject) in world.friends or (subject, 0) in world.friends
    spec = world.people[subject]
    return Situation(
        app_status=world.status,
        approved=world.approved,
        agreement_signed=world.agreement,
        viewer_is_member=world.member,
        viewer_grant=_active(viewer),
        token_scope=world.token_scope,
        relation="self" if subject == 0 else ("friend" if friend else "stranger"),
        audience=spec.audience,
        subject_grant=_active(spec),
        share_mask=spec.share_mask,
    )


def _build(world: World) -> tuple[list[Person], object, str]:
    now = timezone.now()
    people = Person.objects.bulk_create(
        [
            Person(
                email=f"w{next(_emails)}@example.test",
                name=f"Name {i}",
                picture=f"https://pictures.example/{i}.png",
                birthday=date(1980, 1, 1) + timedelta(days=97 * i),
                hometown=f"Town {i}",
                current_city=f"City {i}",
                relationship_status="single",
                likes=[f"like {i}"],
                friend_share_mask=spec.share_mask,
                password="!",
                **{f"audience_{f}": a for f, a in spec.audience.items()},
            )
            for i, spec in enumerate(world.people)
        ]
    )
    Friendship.objects.bulk_create(
        [Friendship(person=people[a], friend=people[b]) for a, b in world.friends]
        + [Friendship(person=people[b], friend=people[a]) for a, b in world.friends]
    )
    app = direct_app(
        status=world.status,
        approved=world.approved,
        agreement=world.agreement,
        members=[people[0].pk] if world.member else [],
    )
    consents = {}
    for person, spec in zip(people, world.people, strict=True):
        if spec.consent == "none":
            continue
        consents[person.pk] = direct_consent(
            person.pk,
            app,
            spec.granted,
            revoked_permissions=spec.revoked,
            revoked=spec.consent == "revoked",
            expires_at=now - timedelta(seconds=1) if spec.consent == "expired" else None,
            email_choice="relay" if spec.relay else "real",
        )
    viewer_consent = consents.get(people[0].pk)
    if viewer_consent is None:  # a token whose consent is gone (as after deletion)
        viewer_consent = direct_consent(people[0].pk, app, [], revoked=True)
    raw = direct_token(viewer_consent, world.token_scope)
    return people, app, raw


def _value(world: World, people: list[Person], index: int, field: str, app_id: int):
    person = people[index]
    if field == "id":
        return app_scoped_id(app_id, person.pk)
    if field == "email":
        return relay_address(app_id, person.pk) if world.people[index].relay else person.email
    value = getattr(person, field)
    return value.isoformat() if isinstance(value, date) else value


def _check_entry(index: int, app_id: int, people: list[Person], expected: dict[int, set[str]]):
    entry = read_entry(index)
    assert (entry.app_id, entry.actor_id) == (app_id, people[0].pk)
    want = {(people[i].pk, fields_to_mask(f)) for i, f in expected.items() if f}
    assert set(entry.released) == want


def _run(world: World) -> None:
    people, app, raw = _build(world)
    viewer = _situation(world, 0)
    usable = world.status == "live" or (world.status == "development" and world.member)
    may_act = usable and bool(viewer.viewer_grant)
    client = Client()
    for endpoint, arg, fields in world.requests:
        requested = (fields or {"name"}) | {"id"}  # the API's default is id,name
        query = {"fields": ",".join(sorted(fields))} if fields else {}
        before = ledger_size()
        if endpoint == "friends":
            _check_friends(world, people, app.pk, raw, client, arg, requested, query, may_act)
            continue
        if endpoint == "me":
            path, target = "/v1/me", 0
        else:
            target = arg
            scoped = app_scoped_id(app.pk, people[arg].pk) if arg >= 0 else "nobody"
            path = f"/v1/people/{scoped}"
        response = get(client, path, raw, **query)
        if not may_act:
            assert response.status_code == 401
            assert ledger_size() == before
            continue
        expected = expected_release(_situation(world, target), requested) if target >= 0 else set()
        if endpoint == "person" and "id" not in expected:
            assert response.status_code == 404
            assert ledger_size() == before
            continue
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body["data"]) == expected
        for field in expected:
            assert body["data"][field] == _value(world, people, target, field, app.pk)
        assert body["meta"]["withheld_fields"] == len(requested - expected)
        assert ledger_size() == before + 1
        _check_entry(before, app.pk, people, {target: expected})


def _check_friends(world, people, app_id, raw, client, limit, requested, query, may_act):
    viewer = _situation(world, 0)
    before = ledger_size()
    response = get(client, "/v1/me/friends", raw, limit=limit, **query)
    if not may_act:
        assert response.status_code == 401
        return
    # Review allows it, or the app is in development mode (only people with a role use
    # it, with any permission: rule 1).
    covered = "user_friends" in viewer.viewer_grant & viewer.token_scope and (
        "user_friends" in world.approved or world.status == "development"
    )
    if not covered:
        assert response.status_code == 403
        assert ledger_size() == before
        return
    friend_indexes = sorted(
        (i for i in range(1, len(people)) if (0, i) in world.friends),
        key=lambda i: people[i].pk,
    )
    expected = {i: expected_release(_situation(world, i), requested) for i in friend_indexes}
    seen: list[int] = []
    withheld_subjects = withheld_fields = 0
    pages = 0
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        pages += 1
        page_released: dict[int, set[str]] = {}
        for entry in body["data"]:
            # A friend with their own grant is named by the app-scoped id; one reached only
            # through their opt-in by an id scoped to (app, installer) (rule 3).
            person_id = person_id_for(app_id, entry["id"])
            scoped_to_installer = person_id is None
            if scoped_to_installer:
                person_id = person_id_for_installer(app_id, people[0].pk, entry["id"])
            index = next(i for i, p in enumerate(people) if p.pk == person_id)
            assert scoped_to_installer == (not _situation(world, index).subject_grant)
            assert set(entry) == expected[index]
            for field, value in entry.items():
                if field != "id":
                    assert value == _value(world, people, index, field, app_id)
            seen.append(index)
            page_released[index] = set(entry)
        withheld_subjects += body["meta"]["withheld_subjects"]
        withheld_fields += body["meta"]["withheld_fields"]
        _check_entry(ledger_size() - 1, app_id, people, page_released)
        after = body["paging"]["next"]
        if after is None:
            break
        response = get(client, "/v1/me/friends", raw, limit=limit, after=after, **query)
    listed = [i for i in friend_indexes if expected[i]]
    assert seen == listed  # complete, in a stable order, each friend once
    assert withheld_subjects == len(friend_indexes) - len(listed)
    assert withheld_fields == sum(len(requested - expected[i]) for i in listed)
    assert ledger_size() == before + pages


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_every_response_follows_the_release_rule_and_is_in_the_ledger(db, world):
    cache.clear()
    with transaction.atomic():
        _run(world)
        transaction.set_rollback(True)
