"""Words for fields and statuses on the privacy pages (English source, Dutch in locale)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise

# A field in "App read your <field>" (grants.permissions.RELEASE_FIELDS).
FIELD_LABELS: dict[str, StrPromise] = {
    "id": gettext_lazy("app identifier"),
    "name": gettext_lazy("name"),
    "picture": gettext_lazy("picture"),
    "email": gettext_lazy("email address"),
    "birthday": gettext_lazy("birthday"),
    "hometown": gettext_lazy("hometown"),
    "current_city": gettext_lazy("current city"),
    "relationship_status": gettext_lazy("relationship status"),
    "likes": gettext_lazy("likes"),
    "posts": gettext_lazy("posts"),
}

AUDIENCE_LABELS: dict[str, StrPromise] = {
    "public": gettext_lazy("Public"),
    "friends": gettext_lazy("Friends"),
    "only_me": gettext_lazy("Only me"),
}

STATUS_LABELS: dict[str, StrPromise] = {
    "live": gettext_lazy("Reviewed and live"),
    "development": gettext_lazy("In development, not reviewed"),
    "suspended": gettext_lazy("Suspended pending review"),
    "banned": gettext_lazy("Banned"),
}


def field_list(fields: list[str]) -> str:
    """ "birthday and hometown", "name, picture and birthday" in the active language."""
    names = [str(FIELD_LABELS.get(f, f)) for f in fields]
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    return str(format_lazy(_("{first} and {last}"), first=", ".join(names[:-1]), last=names[-1]))
