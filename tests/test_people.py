"""People and friendships: audiences default safely, friendships are symmetric and the
5,000 cap holds in the database itself."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from consentry.people.actions import FriendshipError, do_add_friendship, do_remove_friendship
from consentry.people.fields import DEFAULT_AUDIENCE, MAX_FRIENDS, PROFILE_FIELDS, Audience
from consentry.people.models import Friendship, Person


def test_new_person_gets_default_audiences(make_person):
    person = make_person()
    person.refresh_from_db()
    for field in PROFILE_FIELDS:
        assert person.audience(field) == DEFAULT_AUDIENCE[field]
    assert person.audience("email") == Audience.ONLY_ME
    assert person.audience("birthday") == Audience.FRIENDS
    assert person.friend_share_mask == 0


def test_friendship_is_symmetric_and_counted(make_person):
    a, b = make_person(), make_person()
    assert do_add_friendship(a, b) is True
    assert do_add_friendship(b, a) is False
    assert set(Friendship.objects.values_list("person_id", "friend_id")) == {
        (a.pk, b.pk),
        (b.pk, a.pk),
    }
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.friend_count, b.friend_count) == (1, 1)
    assert do_remove_friendship(a, b) is True
    a.refresh_from_db()
    assert a.friend_count == 0
    assert not Friendship.objects.exists()


def test_cannot_befriend_oneself(make_person):
    a = make_person()
    with pytest.raises(FriendshipError):
        do_add_friendship(a, a)
    with pytest.raises(IntegrityError), transaction.atomic():
        Friendship.objects.create(person=a, friend=a)


def _bulk_befriend(center: Person, others: list[Person]) -> None:
    Friendship.objects.bulk_create(
        [Friendship(person=center, friend=o) for o in others]
        + [Friendship(person=o, friend=center) for o in others]
    )


def test_friendship_cap_is_enforced_by_the_database(make_person):
    """Even a raw bulk insert that bypasses the actions cannot pass 5,000 friends."""
    center = make_person()
    Person.objects.bulk_create(
        [Person(email=f"cap{i}@example.test", name=f"Cap {i}") for i in range(MAX_FRIENDS + 1)]
    )
    others = list(Person.objects.filter(email__startswith="cap").order_by("pk"))
    _bulk_befriend(center, others[:MAX_FRIENDS])
    center.refresh_from_db()
    assert center.friend_count == MAX_FRIENDS

    with pytest.raises(IntegrityError), transaction.atomic():
        Friendship.objects.create(person=center, friend=others[MAX_FRIENDS])
    with pytest.raises(FriendshipError, match="cap of 5000"):
        do_add_friendship(center, others[MAX_FRIENDS])
    center.refresh_from_db()
    assert center.friend_count == MAX_FRIENDS
    assert Friendship.objects.filter(person=others[MAX_FRIENDS]).count() == 0


def test_friend_count_cannot_be_forged(make_person):
    """The count is the trigger's: an UPDATE past the cap fails the CHECK constraint."""
    person = make_person()
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE people_person SET friend_count = %s WHERE id = %s", [MAX_FRIENDS + 1, person.pk]
        )
