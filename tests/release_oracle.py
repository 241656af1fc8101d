"""An independent oracle of docs/rules.md's release rule, for the property tests.

Written straight from docs/rules.md's text and the decisions documented in
consentry/graph/release.py's docstring, on plain dictionaries, deliberately WITHOUT
importing consentry.graph.release or consentry.grants.permissions: if the product's rule
and this reading ever disagree, a test fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# docs/rules.md "Permissions", transcribed.
FIELD_PERMISSION = {
    "name": "profile",
    "picture": "profile",
    "email": "email",
    "birthday": "user_birthday",
    "hometown": "user_hometown",
    "current_city": "user_location",
    "relationship_status": "user_relationships",
    "likes": "user_likes",
    "posts": "user_posts",
}
ALL_PERMISSIONS = (
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
)
NEEDS_REVIEW = {
    "user_birthday",
    "user_hometown",
    "user_location",
    "user_relationships",
    "user_likes",
    "user_posts",
    "user_friends",
}
NEEDS_AGREEMENT = {"user_likes", "user_posts"}
# people.fields.FIELD_BIT, transcribed: bit i for the i-th profile field.
PROFILE_ORDER = (
    "name",
    "picture",
    "email",
    "birthday",
    "hometown",
    "current_city",
    "relationship_status",
    "likes",
    "posts",
)


def opted_in(mask: int, name: str) -> bool:
    return bool(mask >> PROFILE_ORDER.index(name) & 1)


@dataclass
class Situation:
    """Everything the rule depends on, as plain values."""

    app_status: str  # live / development / suspended / banned
    approved: set[str]
    agreement_signed: bool
    viewer_is_member: bool
    viewer_grant: set[str]  # U's active permissions (empty when U's consent is not active)
    token_scope: set[str]
    within_limits: bool = True
    relation: str = "self"  # self / friend / stranger
    audience: dict[str, str] = field(default_factory=dict)  # of the subject
    subject_grant: set[str] = field(default_factory=set)  # S's own active permissions
    share_mask: int = 0
    route_closed: bool = False  # the subject closed the viewer's route to apps


def _app_can_use(s: Situation, permission: str) -> bool:
    """Rule 1."""
    if s.app_status == "live":
        pass
    elif s.app_status == "development":
        if not s.viewer_is_member:
            return False
    else:
        return False
    if permission in NEEDS_REVIEW:
        # In development (members only) review is not needed yet; the agreement is.
        if permission not in s.approved and s.app_status != "development":
            return False
        if permission in NEEDS_AGREEMENT and not s.agreement_signed:
            return False
    return True


def _covered(s: Situation, permission: str) -> bool:
    """Rules 1, 2 and 4 for a permission."""
    return (
        s.within_limits
        and _app_can_use(s, permission)
        and permission in s.viewer_grant
        and permission in s.token_scope
    )


def _field_released(s: Situation, name: str) -> bool:
    permission = FIELD_PERMISSION[name]
    if s.relation == "self":
        return _covered(s, permission)
    if s.relation != "friend":
        return False
    if name == "email":  # never an email of someone else
        return False
    if not _covered(s, "user_friends"):
        return False
    if s.route_closed:  # "apps may not get my data through this friend"
        return False
    if not _covered(s, permission):
        return False
    if s.audience.get(name) not in ("public", "friends"):
        return False
    return permission in s.subject_grant or opted_in(s.share_mask, name)


def expected_release(s: Situation, requested: Iterable[str]) -> set[str]:
    """The fields of the subject that docs/rules.md says reach the app."""
    requested = set(requested)
    out = {f for f in requested if f != "id" and _field_released(s, f)}
    if s.relation == "self":
        if "id" in requested and any(_covered(s, p) for p in ALL_PERMISSIONS):
            out.add("id")
        return out
    if s.relation != "friend":
        return set()
    # A friend is listed when they use the app or share something requested; a friend
    # who is not listed is withheld whole, id included.
    listed = _covered(s, "user_friends") and not s.route_closed and bool(s.subject_grant or out)
    if not listed:
        return set()
    if "id" in requested:
        out.add("id")
    return out


def expected_friend_id_kind(s: Situation) -> str:
    """docs/rules.md: a friend who does not use the app and reaches it only through their
    opt-in gets an id scoped to (app, installer); one who uses it keeps the app's id.
    Only meaningful for a listed friend."""
    return "app" if s.subject_grant else "installer"
