"""The permission (OAuth scope) catalogue, docs/rules.md "Permissions". Plain data.

Each permission says which profile fields it releases, whether an app needs review
approval before it may ask for it, and whether it also needs the signed data-use
agreement. There is deliberately no permission for another person's data.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    name: str
    fields: frozenset[str]
    review: bool = False
    agreement: bool = False

    @property
    def basic(self) -> bool:
        return not self.review


PERMISSIONS: dict[str, Permission] = {
    p.name: p
    for p in (
        Permission("openid", frozenset({"id"})),
        Permission("profile", frozenset({"id", "name", "picture"})),
        Permission("email", frozenset({"email"})),
        Permission("user_birthday", frozenset({"birthday"}), review=True),
        Permission("user_hometown", frozenset({"hometown"}), review=True),
        Permission("user_location", frozenset({"current_city"}), review=True),
        Permission("user_relationships", frozenset({"relationship_status"}), review=True),
        Permission("user_likes", frozenset({"likes"}), review=True, agreement=True),
        Permission("user_posts", frozenset({"posts"}), review=True, agreement=True),
        # Releases the *list* of friends who also use the app: their app-scoped id (and,
        # through the release rule, whatever else of theirs the app may see).
        Permission("user_friends", frozenset(), review=True),
    )
}

BASIC_LOGIN = frozenset({"openid", "profile"})

# Each permission's bit in Consent.permission_mask, in catalogue order. The order is
# stored in the database: add new permissions at the end, never reorder or remove one.
PERMISSION_BIT: dict[str, int] = {name: 1 << i for i, name in enumerate(PERMISSIONS)}


def permissions_to_mask(permissions: Iterable[str]) -> int:
    """The PERMISSION_BIT mask of some permission names (KeyError for unknown names)."""
    mask = 0
    for name in permissions:
        mask |= PERMISSION_BIT[name]
    return mask


@functools.lru_cache(maxsize=1024)
def mask_to_permissions(mask: int) -> frozenset[str]:
    """The permission names whose bits are set in `mask` (remembered: every Graph API
    call turns its grant's mask into names, and apps' grants have few distinct masks)."""
    return frozenset(name for name, bit in PERMISSION_BIT.items() if mask & bit)


# The permission that covers each releasable field. `id` (the app-scoped id) comes with
# any grant at all: an app cannot be told about a person without learning that handle.
PERMISSION_FOR_FIELD: dict[str, str] = {
    field: perm.name for perm in PERMISSIONS.values() for field in perm.fields if field != "id"
}

# Fields the Graph API can return about a person, in response order.
GRAPH_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "picture",
    "email",
    "birthday",
    "hometown",
    "current_city",
    "relationship_status",
    "likes",
)


def unknown_permissions(scopes: set[str] | frozenset[str]) -> set[str]:
    return set(scopes) - PERMISSIONS.keys()


# Everything that can be released about a subject, and its bit in a ledger field mask.
RELEASE_FIELDS: tuple[str, ...] = (*GRAPH_FIELDS, "posts")
RELEASE_BIT: dict[str, int] = {field: 1 << i for i, field in enumerate(RELEASE_FIELDS)}


def fields_to_mask(fields: set[str] | frozenset[str]) -> int:
    mask = 0
    for field in fields:
        mask |= RELEASE_BIT[field]
    return mask


def mask_to_fields(mask: int) -> list[str]:
    return [field for field in RELEASE_FIELDS if mask & RELEASE_BIT[field]]
