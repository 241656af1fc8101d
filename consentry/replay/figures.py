"""The replay's figures for one policy run, read back from the ledger and the world.

Every number about what reached an app comes from the disclosure ledger (its exact
per-app reach, consentry.ledger.api.blast_radius); who consented comes from the grants;
who opted in from the people's own settings. tests/test_replay.py recomputes each figure
independently from the raw call records and the world.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consentry.grants.models import Consent
from consentry.grants.permissions import RELEASE_BIT, RELEASE_FIELDS
from consentry.ledger.api import blast_radius, verify_ledger
from consentry.ledger.models import CallRecord
from consentry.people.models import Friendship, Person
from consentry.replay.runner import RunStats
from consentry.replay.scenario import CALENDAR, QUIZ
from consentry.world.loader import world_people

NOT_AVAILABLE = "not available"


def consenters(app_id: int) -> set[int]:
    """Everyone who ever granted the app anything (the consent row stays after a lapse or
    a revocation)."""
    return set(Consent.objects.filter(application_id=app_id).values_list("person_id", flat=True))


def opted_in() -> set[int]:
    return set(Person.objects.filter(friend_share_mask__gt=0).values_list("pk", flat=True))


def app_figures(app_id: int, opt_ins: set[int]) -> dict[str, Any]:
    """Who an app's data came from, per the ledger."""
    reach = blast_radius(app_id)
    installers = consenters(app_id)
    reached = set(reach)
    without = reached - installers
    via_opt_in = without & opt_ins
    per_field = {
        name: sum(1 for mask in reach.values() if mask & RELEASE_BIT[name])
        for name in RELEASE_FIELDS
    }
    friends_fields = {
        name: sum(1 for pid in without if reach[pid] & RELEASE_BIT[name]) for name in RELEASE_FIELDS
    }
    return {
        "app_id": app_id,
        "installers": len(installers),
        "reached": len(reached),
        "without_own_consent": len(without),
        "via_opt_in": len(via_opt_in),
        "without_consent_or_opt_in": len(without - opt_ins),
        "amplification": round(len(reached) / len(installers), 2) if installers else 0.0,
        "per_field": per_field,
        "per_field_without_consent": friends_fields,
        "calls": CallRecord.objects.filter(app_id=app_id).count(),
    }


def world_figures() -> dict[str, Any]:
    people = world_people()
    count = people.count()
    friendships = Friendship.objects.count() // 2
    return {
        "people": count,
        "friendships": friendships,
        "mean_friends": round(2 * friendships / count, 1) if count else 0.0,
        "opted_in": len(opted_in()),
    }


def detection_figures(
    app_id: int, start: str, notify_seconds: float | None = None
) -> dict[str, Any]:
    """When harvest detection alerted, throttled and suspended the app (simulated days
    since the replay began), and the notices that followed a ban.

    The single place the replay reads detection and incident response from. Until the
    detection capability (consentry.detection, consentry.incidents) is installed, every
    figure here is "not available"; once it is, the firings come from
    `consentry.detection.api.firings_for_app` and the notices from the app's Incident.
    """
    figures: dict[str, Any] = {
        "alerted_day": NOT_AVAILABLE,
        "throttled_day": NOT_AVAILABLE,
        "suspended_day": NOT_AVAILABLE,
        "notified_people": NOT_AVAILABLE,
        "notified_within_seconds": NOT_AVAILABLE,
    }
    try:
        from consentry.detection.api import firings_for_app
    except ImportError:
        return figures
    began = datetime.fromisoformat(start)
    first: dict[str, datetime] = {}
    for firing in firings_for_app(app_id):
        first.setdefault(firing.action, firing.fired_at)
    for action, key in (
        ("alert", "alerted_day"),
        ("throttle", "throttled_day"),
        ("suspend", "suspended_day"),
    ):
        moment = first.get(action)
        figures[key] = (
            None
            if moment is None
            else round((moment - began).days + ((moment - began).seconds / 86_400), 1)
        )
    try:
        from consentry.incidents.models import Incident
    except ImportError:
        return figures
    incident = Incident.objects.filter(app_id=app_id).order_by("pk").first()
    if incident is None:
        figures["notified_people"] = None
        figures["notified_within_seconds"] = None
        return figures
    figures["notified_people"] = incident.notified
    # Real seconds from the ban to the last notice (the replay's clock is simulated).
    figures["notified_within_seconds"] = notify_seconds
    return figures


def policy_figures(stats: RunStats) -> dict[str, Any]:
    """Everything the report shows for one policy run."""
    verify = verify_ledger()
    opt_ins = opted_in()
    return {
        "world": world_figures(),
        "quiz": app_figures(stats.app_ids[QUIZ.key], opt_ins),
        "calendar": app_figures(stats.app_ids[CALENDAR.key], opt_ins),
        "detection": detection_figures(
            stats.app_ids[QUIZ.key], stats.started, stats.ban_notify_seconds
        ),
        "ledger": {
            "ok": verify.ok,
            "entries": verify.entries,
            "subject_records": verify.subject_records,
            "summary": verify.summary(),
        },
        "run": {
            "started": stats.started,
            "ended": stats.ended,
            "seconds": stats.seconds,
            "installs": stats.installs,
            "refused_installs": stats.refused_installs,
            "calls": stats.calls,
            "statuses": stats.statuses,
            "probes": stats.probes,
            "probes_found": stats.probes_found,
            "quiz_install_days": stats.quiz_install_days,
            "app_ids": stats.app_ids,
        },
    }
