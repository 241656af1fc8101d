"""The jobs that keep grants and apps honest over time (run by consentry.developers.tasks
on Django's Tasks API, each taking `now` so tests can move the clock):

- grants expire 90 days after their last use, and their tokens die with them;
- an app unused for 90 days loses every token;
- live apps recertify every 12 months: reminders at 30 and 7 days, then their reviewed
  permissions lapse until they recertify (basic login keeps working);
- callbacks due for a (re)try are sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from consentry.developers import callbacks, rules
from consentry.developers.actions import _sync_reviewed_permissions
from consentry.developers.models import AppProfile, AppRole, Role
from consentry.grants.actions import do_expire_consents
from consentry.grants.models import Consent
from consentry.notices.actions import NoticeDraft, do_send_notices
from consentry.oauth.models import AccessToken, Application, AppStatus, RefreshToken


@dataclass
class SweepReport:
    consents_expired: int = 0
    unused_apps_cleared: list[int] = field(default_factory=list)
    reminders: list[tuple[int, int]] = field(default_factory=list)  # (app id, days)
    lapsed: list[int] = field(default_factory=list)
    deliveries_tried: int = 0


def expire_grants(now: datetime) -> int:
    return do_expire_consents(now)


def do_clear_tokens_of_unused_apps(now: datetime) -> list[int]:
    """Invalidate every token of each app nobody used for 90 days (no consent used since,
    and the app older than that). Returns the apps cleared."""
    cutoff = now - rules.APP_UNUSED_AFTER
    recently_used = (
        Consent.objects.filter(last_used_at__gt=cutoff).values("application_id").distinct()
    )
    with_tokens = (
        RefreshToken.objects.filter(revoked__isnull=True).values("application_id").distinct()
    )
    candidates = Application.objects.filter(
        Q(pk__in=with_tokens) | Q(pk__in=AccessToken.objects.values("application_id").distinct()),
        created__lte=cutoff,
    ).exclude(pk__in=recently_used)
    cleared = []
    for app_id in candidates.values_list("pk", flat=True):
        with transaction.atomic():
            last = Consent.objects.filter(application_id=app_id).aggregate(m=Max("last_used_at"))
            if last["m"] is not None and last["m"] > cutoff:
                continue  # used since we looked
            RefreshToken.objects.filter(application_id=app_id, revoked__isnull=True).update(
                revoked=now, updated=now, access_token=None
            )
            AccessToken.objects.filter(application_id=app_id).delete()
            AppProfile.objects.update_or_create(
                application_id=app_id, defaults={"unused_tokens_cleared_at": now}
            )
        cleared.append(app_id)
    return cleared


def do_run_recertification(now: datetime) -> tuple[list[tuple[int, int]], list[int]]:
    """Send due recertification reminders (console and email, to the app's admins and
    developers) and lapse apps whose year is up. Returns (reminders sent, apps lapsed)."""
    reminders: list[tuple[int, int]] = []
    lapsed: list[int] = []
    profiles = AppProfile.objects.select_related("application").filter(
        certified_at__isnull=False,
        lapsed_at__isnull=True,
        application__status=AppStatus.LIVE,
    )
    for profile in profiles:
        assert profile.certified_at is not None
        stage = rules.certification_stage(profile.certified_at, now)
        if stage == rules.CertStage.LAPSED:
            with transaction.atomic():
                locked = AppProfile.objects.select_for_update().get(pk=profile.pk)
                if locked.lapsed_at is not None:
                    continue
                locked.lapsed_at = now
                locked.save(update_fields=["lapsed_at"])
                _sync_reviewed_permissions(profile.application)
                _notify_team(
                    profile.application,
                    "developers.recertification_lapsed",
                    f"{profile.application.name}: reviewed permissions lapsed",
                    "The app did not recertify its purposes within 12 months. Its reviewed "
                    "permissions are withdrawn until it recertifies in the developer console; "
                    "basic login keeps working.",
                )
            lapsed.append(profile.application_id)
            continue
        days = rules.reminder_due(stage, profile.last_reminder_days)
        if days is None:
            continue
        with transaction.atomic():
            updated = AppProfile.objects.filter(
                Q(last_reminder_days__isnull=True) | Q(last_reminder_days__gt=days),
                pk=profile.pk,
            ).update(last_reminder_days=days)
            if not updated:
                continue
            deadline = rules.recertify_by(profile.certified_at)
            _notify_team(
                profile.application,
                "developers.recertification_due",
                f"{profile.application.name}: recertify within {days} days",
                f"Re-confirm the app's purposes and data-use agreement by "
                f"{deadline:%Y-%m-%d} in the developer console, or its reviewed permissions "
                "lapse.",
            )
        reminders.append((profile.application_id, days))
    return reminders, lapsed


def _notify_team(application: Application, kind: str, title: str, body: str) -> None:
    """A notice (console and email) to the app's admins and developers."""
    people = AppRole.objects.filter(
        application=application, role__in=(Role.ADMIN, Role.DEVELOPER)
    ).values_list("person_id", flat=True)
    drafts = [
        NoticeDraft(
            person_id=person_id,
            kind=kind,
            title=title,
            body=body,
            data={"application_id": application.pk},
        )
        for person_id in people
    ]
    if drafts:
        do_send_notices(drafts)


def deliver_due_callbacks(now: datetime) -> int:
    ids = callbacks.due_deliveries(now)
    for delivery_id in ids:
        callbacks.deliver(delivery_id, now)
    return len(ids)


def run_lifecycle(now: datetime | None = None) -> SweepReport:
    """Every lifecycle job once, in order."""
    now = now or timezone.now()
    report = SweepReport()
    report.consents_expired = expire_grants(now)
    report.unused_apps_cleared = do_clear_tokens_of_unused_apps(now)
    report.reminders, report.lapsed = do_run_recertification(now)
    report.deliveries_tried = deliver_due_callbacks(now)
    return report
