"""Writes to people and friendships; each function is one transaction."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from consentry.people.fields import MAX_FRIENDS
from consentry.people.models import Friendship, Person


class FriendshipError(ValueError):
    """A friendship that cannot exist: with oneself, or past the cap."""


def do_add_friendship(a: Person | int, b: Person | int) -> bool:
    """Make `a` and `b` friends (both directions). Returns False if they already were.

    The cap is the database's CHECK on the trigger-maintained friend_count; we translate
    its IntegrityError into a FriendshipError that names the person over the cap.
    """
    a_id = a if isinstance(a, int) else a.pk
    b_id = b if isinstance(b, int) else b.pk
    if a_id == b_id:
        raise FriendshipError("a person cannot befriend themselves")
    if Friendship.objects.filter(person_id=a_id, friend_id=b_id).exists():
        return False
    try:
        with transaction.atomic():
            Friendship.objects.bulk_create(
                [
                    Friendship(person_id=a_id, friend_id=b_id),
                    Friendship(person_id=b_id, friend_id=a_id),
                ]
            )
    except IntegrityError as exc:
        full = Person.objects.filter(pk__in=[a_id, b_id], friend_count__gte=MAX_FRIENDS)
        names = ", ".join(str(p.external_id or p.pk) for p in full)
        if names:
            raise FriendshipError(f"friendship cap of {MAX_FRIENDS} reached for {names}") from exc
        raise
    return True


def do_remove_friendship(a: Person | int, b: Person | int) -> bool:
    """End the friendship between `a` and `b` (both directions)."""
    a_id = a if isinstance(a, int) else a.pk
    b_id = b if isinstance(b, int) else b.pk
    with transaction.atomic():
        deleted, _ = Friendship.objects.filter(
            person_id__in=[a_id, b_id], friend_id__in=[a_id, b_id]
        ).delete()
    return deleted > 0
