"""The notice every affected person gets when an app is banned: exactly what of theirs the
app received, when, and through which friend (docs/rules.md "Harvest detection and incident
response"). Pure: plain values in, title, body and data out, in the person's language.

A ban may notify 100,000 people: the translated sentences are looked up once per language
(`NoticeTexts.for_language`) and each notice is then plain string formatting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
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


@dataclass(frozen=True)
class NoticeTexts:
    """The notice's sentences in one language, with %-placeholders."""

    title: str
    intro: str
    listing: str
    once: str
    first_last: str
    outro: str
    self_use: str
    via_friend: str
    a_friend: str
    labels: dict[str, str]

    @staticmethod
    @lru_cache(maxsize=16)
    def for_language(language: str) -> NoticeTexts:
        with translation.override(language or "en"):
            return NoticeTexts(
                title=_("“%(app)s” was banned: what it received about you"),
                intro=_(
                    "On %(date)s Consentry banned the app “%(app)s” for misusing people's "
                    "data. Its access is cut off: it can no longer receive anything about you."
                ),
                listing=_(
                    "This is exactly what it received about you, from the disclosure ledger:"
                ),
                once=_("%(field)s, first on %(first)s, %(through)s"),
                first_last=_(
                    "%(field)s, first on %(first)s %(through)s, last on %(last)s %(last_through)s"
                ),
                outro=_(
                    "You need not do anything. Your privacy center lists every disclosure "
                    "about you."
                ),
                self_use=_("when you used the app yourself"),
                via_friend=_("through your friend %(name)s"),
                a_friend=_("a friend"),
                labels={field: str(label) for field, label in FIELD_LABELS.items()},
            )


@lru_cache(maxsize=65536)
def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@lru_cache(maxsize=65536)
def _iso(moment: datetime) -> str:
    return moment.isoformat()


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
    t = NoticeTexts.for_language(language)

    def through(actor: int) -> str:
        if actor == person_id:
            return t.self_use
        return t.via_friend % {"name": names.get(actor) or t.a_friend}

    lines = [
        t.intro % {"date": _when(banned_at), "app": app_name},
        "",
        t.listing,
    ]
    for e in exposures:
        label = t.labels.get(e.field, e.field)
        if e.first_at == e.last_at or e.first_through == e.last_through:
            text = t.once % {
                "field": label,
                "first": _when(e.first_at),
                "through": through(e.first_through),
            }
        else:
            text = t.first_last % {
                "field": label,
                "first": _when(e.first_at),
                "through": through(e.first_through),
                "last": _when(e.last_at),
                "last_through": through(e.last_through),
            }
        lines.append("- " + text)
    lines += ["", t.outro]

    def who(actor: int) -> str:
        return "self" if actor == person_id else names.get(actor, "")

    data = {
        "incident": incident_id,
        "app_id": app_id,
        "app": app_name,
        "banned_at": banned_at.isoformat(),
        "fields": {
            e.field: {
                "first_at": _iso(e.first_at),
                "last_at": _iso(e.last_at),
                "first_through": who(e.first_through),
                "last_through": who(e.last_through),
            }
            for e in exposures
        },
    }
    title = (t.title % {"app": app_name})[:300]  # Notice.title holds 300
    return BanNotice(person_id, title, "\n".join(lines), data)
