"""A small deterministic world for detection tests: people with friends (some opted in to
friend sharing), a harvesting quiz and a birthday calendar, with tokens made directly
(tests/graph_fixtures.py) so that thousands of calls stay fast."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.test import Client

from consentry.people.fields import FIELD_BIT
from consentry.people.models import Friendship, Person
from tests.graph_fixtures import direct_app, direct_consent, direct_token

ALL_FIELDS = "name,picture,birthday,hometown,current_city,relationship_status,likes"
QUIZ_PERMISSIONS = [
    "openid",
    "profile",
    "user_birthday",
    "user_hometown",
    "user_location",
    "user_relationships",
    "user_likes",
    "user_friends",
]
CALENDAR_PERMISSIONS = ["openid", "profile", "user_birthday", "user_friends"]
NO_LIMITS = {"requests_per_minute": 10**6, "token_requests_per_minute": 10**6}


@dataclass
class World:
    people: list[Person]
    friends: dict[int, list[int]]
    tokens: dict[str, dict[int, str]] = field(default_factory=dict)


def build_people(n: int, mean_friends: int, seed: int = 2014, share: float = 0.15) -> World:
    rng = random.Random(seed)
    share_mask = FIELD_BIT["birthday"] | FIELD_BIT["likes"] | FIELD_BIT["hometown"]
    people = Person.objects.bulk_create(
        [
            Person(
                email=f"w{seed}-{i}@world.test",
                name=f"World Person {i}",
                birthday=date(1970, 1, 1) + timedelta(days=rng.randrange(12000)),
                hometown=rng.choice(["Delft", "Leiden", "Gouda", "Breda", "Ede"]),
                likes=[f"like {rng.randrange(50)}"],
                friend_share_mask=share_mask if rng.random() < share else 0,
                password="!",
            )
            for i in range(n)
        ],
        batch_size=1000,
    )
    ids = [p.pk for p in people]
    pairs: set[tuple[int, int]] = set()
    for i, pid in enumerate(ids):
        for _ in range(mean_friends // 2):
            j = (i + rng.randrange(1, 60)) % n if rng.random() < 0.7 else rng.randrange(n)
            if j != i:
                pairs.add((pid, ids[j]))
                pairs.add((ids[j], pid))
    Friendship.objects.bulk_create(
        [Friendship(person_id=a, friend_id=b) for a, b in sorted(pairs)], batch_size=2000
    )
    friends: dict[int, list[int]] = {pid: [] for pid in ids}
    for a, b in pairs:
        friends[a].append(b)
    return World(people=people, friends=friends)


def install(world: World, app, permissions: list[str], installers: list[int]) -> dict[int, str]:  # type: ignore[no-untyped-def]
    tokens = {}
    for pid in installers:
        consent = direct_consent(pid, app, permissions)
        tokens[pid] = direct_token(consent, permissions)
    return tokens


def make_quiz(**limits: int):  # type: ignore[no-untyped-def]
    return direct_app(
        approved=[p for p in QUIZ_PERMISSIONS if p not in ("openid", "profile")],
        limits={**NO_LIMITS, **limits},
    )


def make_calendar():  # type: ignore[no-untyped-def]
    return direct_app(approved=["user_birthday", "user_friends"], limits=NO_LIMITS)


def call(client: Client, token: str, path: str, **params: str) -> int:
    return client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {token}").status_code
