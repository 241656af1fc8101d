"""What the consent screen asks, and what a person's answer grants. Pure rules.

Incremental consent: permissions the person already granted (and still holds) are not
asked again; when nothing new is asked the screen is skipped. Basic login (`openid`,
`profile`) is fixed, every other permission can be unticked on its own, and only what
stays ticked is granted.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from consentry.grants.permissions import BASIC_LOGIN, PERMISSIONS

# What each permission releases, in the person's words (shown when the app declared no
# purpose, and always as the row's title).
LABELS: dict[str, Promise] = {
    "openid": _("Sign you in with an identifier only this app knows"),
    "profile": _("Your name and profile picture"),
    "email": _("Your email address"),
    "user_birthday": _("Your birthday"),
    "user_hometown": _("Your hometown"),
    "user_location": _("Your current city"),
    "user_relationships": _("Your relationship status"),
    "user_likes": _("Your likes"),
    "user_posts": _("Your posts"),
    "user_friends": _("Your friends who also use this app"),
}


@dataclass(frozen=True)
class ConsentRow:
    permission: str
    label: str
    purpose: str
    fixed: bool  # basic login: granted with the whole consent, no checkbox
    needs_review: bool


@dataclass(frozen=True)
class ConsentPlan:
    requested: tuple[str, ...]
    already: frozenset[str]  # requested and already granted: not asked again
    rows: tuple[ConsentRow, ...]  # the new permissions, one row each

    @property
    def nothing_new(self) -> bool:
        return not self.rows

    def granted(self, ticked: set[str] | frozenset[str]) -> tuple[str, ...]:
        """The scopes an "Allow" grants: what was already held, the fixed rows, and the
        ticked rows; in the order the app asked. Anything not on the screen is ignored."""
        new = {r.permission for r in self.rows if r.fixed or r.permission in ticked}
        return tuple(s for s in self.requested if s in self.already or s in new)

    def new_permissions(self, ticked: set[str] | frozenset[str]) -> frozenset[str]:
        return frozenset(r.permission for r in self.rows if r.fixed or r.permission in ticked)

    def purposes_shown(self) -> dict[str, str]:
        return {r.permission: r.purpose for r in self.rows}


def plan_consent(
    requested: list[str] | tuple[str, ...],
    active: set[str] | frozenset[str],
    purposes: dict[str, str],
) -> ConsentPlan:
    """The consent screen for `requested` scopes of a person who holds `active` ones for
    an app whose declared purposes are `purposes` (permission -> text)."""
    ordered = tuple(dict.fromkeys(s for s in requested if s in PERMISSIONS))
    already = frozenset(s for s in ordered if s in active)
    rows = tuple(
        ConsentRow(
            permission=s,
            label=str(LABELS[s]),
            purpose=str(purposes.get(s) or ""),
            fixed=s in BASIC_LOGIN,
            needs_review=PERMISSIONS[s].review,
        )
        for s in ordered
        if s not in already
    )
    return ConsentPlan(requested=ordered, already=already, rows=rows)
