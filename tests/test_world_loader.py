"""The bulk friendship loader keeps friend counts exact and the cap in force, and leaves
the database's own triggers in place afterwards."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import IntegrityError, transaction

from consentry.people.actions import do_add_friendship
from consentry.people.fields import MAX_FRIENDS
from consentry.people.models import Friendship, Person
from consentry.world.loader import insert_friendships


def _people(n: int, prefix: str) -> np.ndarray:
    Person.objects.bulk_create(
        [Person(email=f"{prefix}{i}@example.test", name=f"{prefix} {i}") for i in range(n)]
    )
    ids = (
        Person.objects.filter(email__startswith=prefix).order_by("pk").values_list("pk", flat=True)
    )
    return np.array(list(ids), dtype=np.int64)


def test_bulk_load_counts_friends_exactly_and_triggers_still_count_afterwards(db):
    ids = _people(6, "bulk")
    with transaction.atomic():
        insert_friendships(ids[[0, 0, 0, 1]], ids[[1, 2, 3, 2]])
    counts = dict(Person.objects.filter(pk__in=ids.tolist()).values_list("pk", "friend_count"))
    assert [counts[int(i)] for i in ids] == [3, 2, 2, 1, 0, 0]
    assert Friendship.objects.count() == 8
    # The per-row trigger is back: an ordinary friendship is still counted.
    do_add_friendship(int(ids[4]), int(ids[5]))
    assert Person.objects.get(pk=ids[4]).friend_count == 1


def test_bulk_load_past_the_cap_fails_whole(db):
    center = _people(1, "center")
    others = _people(MAX_FRIENDS + 1, "other")
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_friendships(np.repeat(center, len(others)), others)
    assert Friendship.objects.count() == 0
    assert Person.objects.get(pk=center[0]).friend_count == 0
    do_add_friendship(int(center[0]), int(others[0]))
    assert Person.objects.get(pk=center[0]).friend_count == 1
