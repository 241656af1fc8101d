"""The demo's sign-ins: a person whose privacy center shows the quiz's reads, the quiz's
developer, and a staff member. Printed by `consentry demo`, kept in var/demo/ (mode 0600),
never in the report."""

from __future__ import annotations

import base64
from typing import Any

from django.db.models import Count

from consentry.people.models import Friendship, Person
from consentry.replay.figures import consenters
from consentry.replay.runner import RunStats, developer_email
from consentry.replay.scenario import QUIZ
from consentry.staff.actions import do_create_staff
from consentry.world.management.commands.world_generate import DEMO_PASSWORD


def showcase_person(app_id: int) -> Person | None:
    """A quiz installer with the most friends who installed it too: their privacy center
    shows the quiz reading them directly and through those friends."""
    installers = consenters(app_id)
    if not installers:
        return None
    best = (
        Friendship.objects.filter(person_id__in=installers, friend_id__in=installers)
        .values("person_id")
        .annotate(n=Count("friend_id"))
        .order_by("-n", "person_id")
        .first()
    )
    person_id = best["person_id"] if best else min(installers)
    return Person.objects.get(pk=person_id)


STAFF_EMAIL = "staff@demo.invalid"


def demo_staff() -> dict[str, str]:
    """A staff member of the demo database, with the TOTP secret of their second factor
    (staff pages need it; consentry.staff). The secret is printed because this is a demo
    database nobody else uses; it is kept in var/demo/sign-ins.json (mode 0600) only."""
    person, device = do_create_staff(STAFF_EMAIL, DEMO_PASSWORD, name="Demo staff")
    secret = base64.b32encode(bytes(device.bin_key)).decode().rstrip("=")
    return {"email": person.email, "totp_secret": secret, "totp_uri": device.config_url}


def demo_sign_ins(stats: RunStats) -> dict[str, Any]:
    person = showcase_person(stats.app_ids[QUIZ.key])
    return {
        "password": DEMO_PASSWORD,
        "person": {
            "email": person.email if person else None,
            "name": person.name if person else None,
            "see": "/privacy/",
        },
        "developer": {"email": developer_email(QUIZ), "see": "/developers/"},
        "staff": demo_staff(),
    }
