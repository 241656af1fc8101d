"""The notice every affected person gets when an app is banned: exactly what of theirs the
app received, when, and through which friend (SPEC.md "Harvest detection and incident
response"). Pure: plain values in, title, body and data out, in the person's language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from consentry.incidents.exposure import FieldExposure

NOTICE_KIND = "app_banned"

FIELD_LABELS = {
    "id": gettext_lazy("your identifier in the app"),
    "name": gettext_lazy("your name"),
    "picture": gettext_lazy("your profile picture"),
    "email": gettext_lazy("your email address"),
    "birthday": gettext_lazy("your birthday"),
    "hometown": gettext_lazy("your hometown"),
    "current_city": gettext_lazy("your current city"),
    "relationship_status": gettext_lazy("your relationship status"),
    "likes": gettext_lazy("your likes"),
    "posts": gettext_lazy("your posts"),
}


@dataclass(frozen=True)
class BanNotice:
    person_id: int
    title: str
    body: str
    data: dict[str, Any]


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def ban_notice(
    *,
    person_id: int,
    language: str,
    incident_id: int,
    app_id: int,
    app_name: str,
    banned_at: datetime,
    exposures: list[FieldExposure],
    names: dict[int, str],
) -> BanNotice:
    """The notice for one affected person. `names` maps acting people's ids to the names
    shown (a friend through whom the app got the data)."""

    def through(actor: int) -> str:
        if actor == person_id:
            return _("when you used the app yourself")
        return _("through your friend %(name)s") % {"name": names.get(actor) or _("a friend")}

    with translation.override(language or "en"):
        title = _("“%(app)s” was banned: what it received about you") % {"app": app_name}
        lines = [
            _(
                "On %(date)s Consentry banned the app “%(app)s” for misusing people's data. "
                "Its access is cut off: it can no longer receive anything about you."
            )
            % {"date": _when(banned_at), "app": app_name},
            "",
            _("This is exactly what it received about you, from the disclosure ledger:"),
        ]
        for e in exposures:
            label = str(FIELD_LABELS.get(e.field, e.field))
            if e.first_at == e.last_at or e.first_through == e.last_through:
                lines.append(
                    "- "
                    + _("%(field)s, first on %(first)s, %(through)s")
                    % {
                        "field": label,
                        "first": _when(e.first_at),
                        "through": through(e.first_through),
                    }
                )
            else:
                lines.append(
                    "- "
                    + _(
                        "%(field)s, first on %(first)s %(through)s, "
                        "last on %(last)s %(last_through)s"
                    )
                    % {
                        "field": label,
                        "first": _when(e.first_at),
                        "through": through(e.first_through),
                        "last": _when(e.last_at),
                        "last_through": through(e.last_through),
                    }
                )
        lines += [
            "",
            _("You need not do anything. Your privacy center lists every disclosure about you."),
        ]
    data = {
        "incident": incident_id,
        "app_id": app_id,
        "app": app_name,
        "banned_at": banned_at.isoformat(),
        "fields": {
            e.field: {
                "first_at": e.first_at.isoformat(),
                "last_at": e.last_at.isoformat(),
                "first_through": "self"
                if e.first_through == person_id
                else names.get(e.first_through, ""),
                "last_through": "self"
                if e.last_through == person_id
                else names.get(e.last_through, ""),
            }
            for e in exposures
        },
    }
    return BanNotice(person_id, title, "\n".join(lines), data)
