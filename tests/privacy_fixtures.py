"""A small world for the privacy-center tests: Bob uses Birthday Calendar with
user_friends; his friend Alice uses it too (and opted in to share her birthday); the app
reads both through the Graph API, so the ledger holds entries about each."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from consentry.oauth.models import Application
from consentry.people.actions import do_add_friendship
from consentry.people.fields import FIELD_BIT
from consentry.people.models import Person
from tests.graph_fixtures import direct_app, direct_consent, direct_token, get

PASSWORD = "correct horse battery staple"
BOB_SCOPES = ["openid", "profile", "user_birthday", "user_friends"]
ALICE_SCOPES = ["openid", "profile", "user_birthday"]


@dataclass
class World:
    app: Application
    alice: Person
    bob: Person
    carol: Person  # a friend of Bob who never used the app and did not opt in
    bob_token: str
    alice_token: str

    def client_for(self, person: Person) -> Client:
        client = Client()
        client.force_login(person)
        return client

    def read_friends(self) -> Any:
        return get(Client(), "/v1/me/friends", self.bob_token, fields="name,birthday")


@pytest.fixture(name="world")
def world_fixture(make_person: Any) -> World:
    alice = make_person(
        name="Alice de Vries",
        email="alice@example.test",
        birthday=dt.date(1990, 1, 3),
        friend_share_mask=FIELD_BIT["birthday"],
    )
    bob = make_person(name="Bob Jansen", email="bob@example.test", birthday=dt.date(1991, 2, 4))
    carol = make_person(name="Carol", email="carol@example.test")
    do_add_friendship(alice, bob)
    do_add_friendship(carol, bob)
    app = direct_app(approved={"user_birthday", "user_friends"})
    app.name = "Birthday Calendar"
    app.save(update_fields=["name"])
    bob_token = direct_token(direct_consent(bob.pk, app, BOB_SCOPES), BOB_SCOPES)
    alice_token = direct_token(direct_consent(alice.pk, app, ALICE_SCOPES), ALICE_SCOPES)
    w = World(app, alice, bob, carol, bob_token, alice_token)
    assert w.read_friends().status_code == 200
    assert get(Client(), "/v1/me", alice_token, fields="name,birthday").status_code == 200
    return w
