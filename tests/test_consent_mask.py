"""Consent.permission_mask (consentry.grants.models) always equals the consent's active
ConsentPermission rows, whatever sequence of consent actions ran: the Graph API reads the
mask, not the rows, so a mask out of step would release or withhold the wrong data.

Random action sequences run inside a savepoint rolled back after each example, on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import importlib
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.grants.actions import (
    consent_for,
    do_grant_consent,
    do_record_consent_use,
    do_revoke_consent,
    do_revoke_permission,
)
from consentry.grants.models import Consent, ConsentPermission
from consentry.grants.permissions import (
    PERMISSION_BIT,
    PERMISSIONS,
    mask_to_permissions,
    permissions_to_mask,
)
from consentry.oauth.models import Application
from consentry.people.actions import do_add_friendship
from consentry.people.models import Person
from tests.graph_fixtures import direct_app, direct_consent, direct_token, get

NAMES = sorted(PERMISSIONS)
MIGRATION = importlib.import_module("consentry.grants.migrations.0002_consent_permission_mask")
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

grant = st.tuples(st.just("grant"), st.frozensets(st.sampled_from(NAMES), min_size=1))
revoke_permission = st.tuples(st.just("revoke_permission"), st.sampled_from(NAMES))
other = st.tuples(st.sampled_from(["revoke_consent", "lapse", "use"]), st.none())
actions = st.lists(st.one_of(grant, revoke_permission, other), min_size=1, max_size=8)


def active_rows(consent: Consent) -> frozenset[str]:
    return frozenset(
        ConsentPermission.objects.filter(consent=consent, revoked_at__isnull=True).values_list(
            "permission", flat=True
        )
    )


def apply(action: str, argument: Any, person: Person, app: Application) -> None:
    consent = consent_for(person.pk, app.pk)
    if action == "grant":
        do_grant_consent(person, app, argument)
    elif consent is None:
        return  # nothing to revoke, lapse or use before the first grant
    elif action == "revoke_permission":
        do_revoke_permission(consent, argument)
    elif action == "revoke_consent":
        do_revoke_consent(consent)
    elif action == "lapse":  # 90 days without use: the grant expires (docs/rules.md rule 2)
        Consent.objects.filter(pk=consent.pk).update(expires_at=timezone.now() - timedelta(1))
    else:
        do_record_consent_use(consent, now=timezone.now() + timedelta(hours=2))


def test_permission_bits_follow_the_catalogue_and_never_move():
    """The bit order is stored in the database; the migration that filled the masks froze
    it, and the catalogue may only grow at the end."""
    assert list(PERMISSION_BIT) == list(PERMISSIONS)
    assert list(PERMISSION_BIT)[: len(MIGRATION.CATALOGUE)] == list(MIGRATION.CATALOGUE)
    assert set(PERMISSION_BIT.values()) == {1 << i for i in range(len(PERMISSIONS))}
    for names in (set(), {"openid"}, set(PERMISSIONS), {"email", "user_friends"}):
        assert mask_to_permissions(permissions_to_mask(names)) == names


@SETTINGS
@given(steps=actions)
def test_mask_equals_the_active_permission_rows_after_every_action(db, steps):
    with transaction.atomic():
        person = Person.objects.create(email="mask@example.test", name="M", password="!")
        app = direct_app(approved=NAMES)
        for action, argument in steps:
            apply(action, argument, person, app)
            consent = consent_for(person.pk, app.pk)
            if consent is None:
                continue
            assert mask_to_permissions(consent.permission_mask) == active_rows(consent)
            if consent.revoked_at is not None:
                assert consent.permission_mask == 0
        transaction.set_rollback(True)


@SETTINGS
@given(steps=actions)
def test_friends_list_follows_the_friends_consent_actions(db, steps):
    """Through GET /v1/me/friends: the friend's name and birthday are released exactly
    when their active consent's rows hold profile and user_birthday."""
    cache.clear()
    with transaction.atomic():
        app = direct_app(approved=["user_birthday", "user_friends"])
        viewer = Person.objects.create(email="viewer@example.test", name="V", password="!")
        friend = Person.objects.create(
            email="friend@example.test",
            name="Fay",
            birthday=dt.date(1990, 5, 6),
            audience_name="friends",
            audience_birthday="friends",
            password="!",
        )
        do_add_friendship(viewer, friend)
        scope = ["openid", "profile", "user_birthday", "user_friends"]
        token = direct_token(direct_consent(viewer.pk, app, scope), scope)
        for action, argument in steps:
            apply(action, argument, friend, app)
        consent = consent_for(friend.pk, app.pk)
        granted = active_rows(consent) if consent and consent.is_active() else frozenset()
        response = get(Client(), "/v1/me/friends", token, fields="name,birthday")
        assert response.status_code == 200, response.content
        data = response.json()["data"]
        if not granted:
            assert data == []
        else:
            (entry,) = data
            assert ("name" in entry) == ("profile" in granted)
            assert ("birthday" in entry) == ("user_birthday" in granted)
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_migration_fills_masks_from_the_active_rows(make_person):
    """The data step of grants 0002 sets each existing consent's mask from its rows."""
    from django.apps import apps

    app = direct_app()
    kept = direct_consent(
        make_person().pk, app, ["openid", "email"], revoked_permissions=["profile"]
    )
    gone = direct_consent(make_person().pk, app, ["openid"], revoked=True)
    Consent.objects.update(permission_mask=12345)
    MIGRATION.fill_masks(apps, None)
    kept.refresh_from_db()
    gone.refresh_from_db()
    assert mask_to_permissions(kept.permission_mask) == {"openid", "email"}
    assert gone.permission_mask == 0
