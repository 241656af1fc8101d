"""Writes of incident response: cases, audits, the one-step ban, deletion attestations,
canary sightings and abuse reports. Each `do_*` is one transaction; notices go out from a
background task enqueued after commit (consentry.incidents.tasks)."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from consentry.grants.models import Consent, ConsentPermission
from consentry.graph import limits
from consentry.incidents.models import (
    AbuseReport,
    AuditRequest,
    CanaryAccount,
    CanarySighting,
    Case,
    DeletionAttestation,
    Incident,
)
from consentry.oauth.models import AccessToken, Application, AppStatus, RefreshToken
from consentry.oauth.tokens import forget_tokens


class AlreadyBanned(Exception):
    pass


def _audit(staff_id: int | None, action: str, target: str, details: dict) -> None:
    """Record a staff action in the append-only staff audit log."""
    if staff_id is None:
        return
    from consentry.people.models import Person
    from consentry.staff.actions import do_record_staff_action

    do_record_staff_action(Person.objects.get(pk=staff_id), action, target, details)


def open_case_for(app_id: int) -> Case | None:
    return Case.objects.filter(app_id=app_id, status=Case.Status.OPEN).order_by("-pk").first()


def do_open_case(app: Application, staff_id: int | None, summary: str = "") -> Case:
    """Open an investigation of the app (or return the one already open)."""
    with transaction.atomic():
        case = open_case_for(app.pk)
        if case is None:
            case = Case.objects.create(app_id=app.pk, opened_by_id=staff_id, summary=summary)
            _audit(staff_id, "open_case", f"app:{app.pk}", {"case": case.pk})
    return case


def do_require_audit(
    app: Application, staff_id: int | None, questions: str, deadline: datetime
) -> AuditRequest:
    """Require the developer to answer `questions` by `deadline` (in the developer
    console)."""
    with transaction.atomic():
        case = do_open_case(app, staff_id)
        audit = AuditRequest.objects.create(
            case=case,
            app_id=app.pk,
            requested_by_id=staff_id,
            questions=questions,
            deadline=deadline,
        )
        _audit(staff_id, "require_audit", f"app:{app.pk}", {"audit": audit.pk})
    return audit


def do_answer_audit(audit: AuditRequest, developer_id: int | None, answer: str) -> None:
    with transaction.atomic():
        AuditRequest.objects.filter(pk=audit.pk).update(
            answer=answer, answered_at=timezone.now(), answered_by_id=developer_id
        )


def do_ban_app(app: Application, staff_id: int | None, reason: str = "") -> Incident:
    """Ban the app, in one transaction: status `banned` (rule 1 refuses it everywhere),
    every grant to it revoked, every access token deleted and refresh token revoked, so
    the next call with any old token fails. After commit a background task takes the
    exact affected set from the ledger and notifies each affected person
    (consentry.incidents.tasks.notify_incident)."""
    now = timezone.now()
    with transaction.atomic():
        locked = Application.objects.select_for_update().get(pk=app.pk)
        if locked.status == AppStatus.BANNED:
            raise AlreadyBanned(f"app {app.pk} is banned already")
        Application.objects.filter(pk=app.pk).update(status=AppStatus.BANNED)
        # update() sends no signal: tell every process's token cache at once.
        forget_tokens(app_ids=[app.pk])
        consents = Consent.objects.filter(application_id=app.pk, revoked_at__isnull=True)
        revoked = consents.update(revoked_at=now, permission_mask=0)
        ConsentPermission.objects.filter(
            consent__application_id=app.pk, revoked_at__isnull=True
        ).update(revoked_at=now)
        RefreshToken.objects.filter(application_id=app.pk, revoked__isnull=True).update(
            revoked=now, updated=now, access_token=None
        )
        tokens, _ = AccessToken.objects.filter(application_id=app.pk).delete()
        case = open_case_for(app.pk)
        incident = Incident.objects.create(
            app_id=app.pk,
            app_name=app.name,
            case=case,
            banned_by_id=staff_id,
            banned_at=now,
            reason=reason,
            consents_revoked=revoked,
            tokens_revoked=tokens,
        )
        _audit(staff_id, "ban_app", f"app:{app.pk}", {"incident": incident.pk, "reason": reason})
        incident_id = incident.pk

        def enqueue() -> None:
            from consentry.incidents.tasks import notify_incident

            limits.lift_throttle(app.pk)  # moot now: rule 1 refuses the app
            notify_incident.enqueue(incident_id)

        transaction.on_commit(enqueue)
    app.status = AppStatus.BANNED
    return incident


def do_record_notified(incident_id: int, count: int) -> None:
    Incident.objects.filter(pk=incident_id).update(notified=F("notified") + count)


def do_record_attestation(
    app: Application, statement: str, staff_id: int | None, attested_at: datetime | None = None
) -> DeletionAttestation:
    """Record the developer's deletion attestation with its date. Deletion is not taken on
    trust: a canary seen after this date marks it false."""
    with transaction.atomic():
        row = DeletionAttestation.objects.create(
            app_id=app.pk,
            statement=statement,
            recorded_by_id=staff_id,
            attested_at=attested_at or timezone.now(),
        )
        _audit(staff_id, "record_attestation", f"app:{app.pk}", {"attestation": row.pk})
    return row


def do_record_sighting(
    app_id: int,
    kind: str,
    detail: str,
    canary: CanaryAccount | None = None,
    seen_at: datetime | None = None,
) -> CanarySighting:
    """A canary of `app_id` was seen outside the app. Every deletion attestation of the app
    dated before the sighting is marked false."""
    seen_at = seen_at or timezone.now()
    with transaction.atomic():
        sighting = CanarySighting.objects.create(
            app_id=app_id, canary=canary, kind=kind, detail=detail[:500], seen_at=seen_at
        )
        DeletionAttestation.objects.filter(
            app_id=app_id, attested_at__lt=seen_at, contradicted_at__isnull=True
        ).update(contradicted_at=seen_at, contradicted_by=sighting)
    return sighting


def do_file_abuse_report(
    app_name: str, description: str, contact_email: str = "", app_id: int | None = None
) -> tuple[AbuseReport, str]:
    """File a report; returns it and the secret for the reporter's status link (only its
    hash is stored)."""
    secret = secrets.token_urlsafe(24)
    with transaction.atomic():
        report = AbuseReport.objects.create(
            app_id=app_id,
            app_name=app_name,
            description=description,
            contact_email=contact_email,
            secret_hash=AbuseReport.hash_secret(secret),
        )
    return report, secret


def do_triage_abuse_report(
    report: AbuseReport,
    staff_id: int | None,
    *,
    status: str,
    case: Case | None,
    reward_amount: Decimal | None,
    staff_note: str,
) -> None:
    with transaction.atomic():
        AbuseReport.objects.filter(pk=report.pk).update(
            status=status,
            case=case,
            reward_amount=reward_amount,
            staff_note=staff_note,
            updated_at=timezone.now(),
        )
        _audit(
            staff_id,
            "triage_abuse_report",
            f"abuse_report:{report.pk}",
            {"status": status, "case": case.pk if case else None},
        )
