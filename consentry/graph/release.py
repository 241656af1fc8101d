"""The release rule (docs/rules.md "The release rule"), written once, as a pure function.

A datum -- field `f` of subject `S` -- is released to app `A` acting for person `U` only
if all four rules hold. `release()` answers, for one subject, which of the requested
fields are released; every Graph API endpoint calls it (through
consentry.graph.access), and the tests check it against an oracle written separately from
docs/rules.md's text. Plain frozen dataclasses in, a frozenset out: no Django, no database.

Decisions where docs/rules.md is silent (each one is the conservative reading):

- Rule 1. `A` may act for `U` when it is live, or in development and `U` has a role on it;
  never when suspended or banned. A permission passes review when it is basic (no review
  needed) or listed in the app's `approved_permissions`, or, while the app is in
  development (so it acts only for people with a role on it), whatever it is; a
  permission that also needs the data-use agreement (user_likes, user_posts) additionally
  needs `agreement_signed`, in development too.
- Rule 2. `U`'s grant is the set of *active* permissions of `U`'s *active* consent to `A`
  (not revoked, `expires_at` in the future); the shell passes an empty set otherwise. The
  permission covering `f` (grants.permissions.PERMISSION_FOR_FIELD) must be in that set
  *and* in the token's scope: a token never carries more than it was issued for.
- `id` (the app-scoped id) is covered by any permission: `U`'s own id is released when at
  least one permission passes rules 1 and 2.
- Rule 3 for a friend. Anything about a friend, even their id, reveals the friendship, so
  every datum about a friend also needs `user_friends` to pass rules 1 and 2 for `U`.
  Field `f` of friend `S` then needs: `S`'s audience for `f` is `public` or `friends`
  (`only_me`, or no audience at all, withholds); and `S` holds an active grant to `A` with
  the permission covering `f` active, or `S`'s friend-share opt-in has `f`'s bit.
  `email` of a friend is never released (docs/rules.md: an app never receives an email of
  someone else), whatever the opt-ins.
- A friend is *listed* (their `id` released) when they use `A` (an active consent with
  at least one active permission) or when at least one other requested field of theirs
  is released through their opt-in. A friend who neither uses the app nor shares
  anything requested is withheld entirely: not even their id leaves.
- Rule 3, closed routes. `S` may close `U`'s route ("apps may not get my data through
  this friend"). While it is closed nothing about `S` reaches any app acting for `U`,
  not even `S`'s id and not even when `S` uses the app themselves: the friend list `U`'s
  apps see simply lacks `S`. It is per (S, U) and covers every app; `S` reopens it at
  will. (Turning friend-sharing off per field is the opt-in mask above.)
- Friend ids and linkability. A listed friend who holds their own active grant to `A`
  (uses the app) is named by their app-scoped id, as they are everywhere in `A`. A
  friend listed only through their opt-in never used `A`: they are named by an id
  scoped to (`A`, `U`) -- stable for that installer, different for every other
  installer, and refused (404) when another installer's token presents it -- so `A`
  cannot join its installers' friend lists and rebuild the graph of people who never
  used it. `friend_id_scope()` decides which id; consentry.oauth.pairwise makes both.
- A person who is neither `U` nor a friend of `U` releases nothing, whatever their own
  grants and audiences say.
- Rule 4. `within_limits` is false while `A` is over a rate or volume limit or throttled
  by harvest detection; then nothing is released. (The HTTP shell answers 429 before it
  gets here; the flag keeps the rule complete on its own.)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consentry.grants.permissions import PERMISSION_FOR_FIELD, PERMISSIONS
from consentry.people.fields import FIELD_BIT, Audience

LIVE = "live"
DEVELOPMENT = "development"
FRIENDS_PERMISSION = "user_friends"
ID_FIELD = "id"
# docs/rules.md "Permissions": an app never receives an email of someone else.
NEVER_ABOUT_OTHERS: frozenset[str] = frozenset({"email"})
NOTHING: frozenset[str] = frozenset()


class Relation(enum.Enum):
    """How the subject `S` stands to the acting person `U`."""

    SELF = "self"
    FRIEND = "friend"
    STRANGER = "stranger"


@dataclass(frozen=True, slots=True)
class AppFacts:
    """What rule 1 needs to know about app `A`."""

    status: str  # consentry.oauth.models.AppStatus value
    approved_permissions: frozenset[str]
    agreement_signed: bool

    @classmethod
    def of(cls, app: Any) -> AppFacts:
        """The facts of an app row (consentry.oauth.models.Application)."""
        return cls(
            status=app.status,
            approved_permissions=frozenset(app.approved_permissions or ()),
            agreement_signed=app.agreement_signed_at is not None,
        )


@dataclass(frozen=True, slots=True)
class ViewerFacts:
    """What rules 1, 2 and 4 need to know about `U`, the person `A` acts for."""

    is_member: bool  # U has a role on A (counts while A is in development)
    grant: frozenset[str]  # active permissions of U's active consent to A, else empty
    token_scope: frozenset[str]
    within_limits: bool = True  # rule 4


@dataclass(frozen=True, slots=True)
class SubjectFacts:
    """What rule 3 needs to know about the subject `S`."""

    relation: Relation
    # S's audience per field; a field missing here counts as only_me.
    audience: Mapping[str, str] = field(default_factory=dict, hash=False)
    grant: frozenset[str] = NOTHING  # active permissions of S's own active consent to A
    friend_share_mask: int = 0  # people.fields.FIELD_BIT bits S opted in to
    route_closed: bool = False  # S closed U's route: nothing of S reaches apps through U


class IdScope(enum.Enum):
    """Which id names a listed friend (module docstring, "Friend ids and linkability")."""

    APP = "app"  # the app-scoped id: the friend uses the app themselves
    INSTALLER = "installer"  # scoped to (app, installer): reached only through the opt-in


def app_usable(status: str, is_member: bool) -> bool:
    """Rule 1, first half: `A` is live, or in development and `U` has a role on it;
    never when suspended or banned. The OAuth layer asks the same question before it
    issues a code or a token (consentry.oauth.models.Application.is_usable_by)."""
    return status == LIVE or (status == DEVELOPMENT and is_member)


def app_may_act(app: AppFacts, viewer: ViewerFacts) -> bool:
    """Rule 1, first half, and rule 4: may `A` act for `U` at all."""
    return viewer.within_limits and app_usable(app.status, viewer.is_member)


def passed_review(app: AppFacts, permission: str) -> bool:
    """Rule 1, second half: review (and, where needed, the agreement) allow `permission`."""
    perm = PERMISSIONS[permission]
    if perm.basic:
        return True
    if app.status != DEVELOPMENT and permission not in app.approved_permissions:
        return False
    return not perm.agreement or app.agreement_signed


def covers(app: AppFacts, viewer: ViewerFacts, permission: str) -> bool:
    """Rules 1, 2 and 4 for one permission: `A` may act for `U`, review allows the
    permission, and `U`'s active grant and the token both include it."""
    return (
        app_may_act(app, viewer)
        and passed_review(app, permission)
        and permission in viewer.grant
        and permission in viewer.token_scope
    )


def may_list_friends(app: AppFacts, viewer: ViewerFacts) -> bool:
    """Whether anything at all about `U`'s friends may reach `A` (user_friends covered)."""
    return covers(app, viewer, FRIENDS_PERMISSION)


def audience_lets_friend_see(audience: str | None) -> bool:
    return audience == Audience.PUBLIC or audience == Audience.FRIENDS


def release(
    app: AppFacts, viewer: ViewerFacts, subject: SubjectFacts, requested: frozenset[str]
) -> frozenset[str]:
    """The requested fields of `subject` that may be released to `app` acting for `viewer`.

    `requested` holds Graph field names (grants.permissions.RELEASE_FIELDS). Everything
    not in the result is withheld. For a friend, `id` in the result means the friend is
    listed; an empty result means the friend is withheld entirely.
    """
    if not app_may_act(app, viewer):
        return NOTHING
    if subject.relation is Relation.SELF:
        released = {
            f for f in requested if f != ID_FIELD and covers(app, viewer, PERMISSION_FOR_FIELD[f])
        }
        if ID_FIELD in requested and any(covers(app, viewer, p) for p in viewer.grant):
            released.add(ID_FIELD)
        return frozenset(released)
    if (
        subject.relation is not Relation.FRIEND
        or subject.route_closed
        or not may_list_friends(app, viewer)
    ):
        return NOTHING
    released = set()
    for f in requested:
        if f == ID_FIELD or f in NEVER_ABOUT_OTHERS:
            continue
        permission = PERMISSION_FOR_FIELD[f]
        if (
            covers(app, viewer, permission)
            and audience_lets_friend_see(subject.audience.get(f))
            and (permission in subject.grant or bool(subject.friend_share_mask & FIELD_BIT[f]))
        ):
            released.add(f)
    if not subject.grant and not released:
        return NOTHING
    if ID_FIELD in requested:
        released.add(ID_FIELD)
    return frozenset(released)


def friend_id_scope(subject: SubjectFacts) -> IdScope:
    """The id a *listed* friend is named by: app-scoped when they hold their own active
    grant to the app, else scoped to (app, installer) so that installers' friend lists
    cannot be joined (module docstring)."""
    return IdScope.APP if subject.grant else IdScope.INSTALLER
