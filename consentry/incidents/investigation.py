"""What the staff investigation page shows about one app, read in one place: figures now,
the exact blast radius and disclosures per field from the ledger, grants, firings, cases,
audits, attestations, canary sightings, abuse reports and incidents."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.apps import apps as django_apps
from django.utils import timezone

from consentry.detection.api import FiringRecord, figures_for_app, firings_for_app
from consentry.detection.rules import Figures
from consentry.grants.models import Consent
from consentry.grants.permissions import RELEASE_FIELDS, mask_to_fields, mask_to_permissions
from consentry.incidents.models import (
    AbuseReport,
    AuditRequest,
    CanarySighting,
    Case,
    DeletionAttestation,
    Incident,
)
from consentry.ledger.api import blast_radius
from consentry.ledger.models import CallRecord
from consentry.oauth.models import Application


@dataclass
class Investigation:
    app: Application
    figures: Figures
    firings: list[FiringRecord]
    people_reached: int
    people_per_field: list[tuple[str, int]]
    ledger_calls: int
    grants_active: int
    grants_total: int
    recent_grants: list[dict[str, Any]]
    cases: list[Case]
    audits: list[AuditRequest]
    attestations: list[DeletionAttestation]
    sightings: list[CanarySighting]
    reports: list[AbuseReport]
    incidents: list[Incident]
    review: dict[str, Any]


def review_history(app_id: int) -> list[dict[str, Any]]:
    """Staff review decisions on the app, newest first, when the developer platform
    (consentry.developers, which owns review) is installed."""
    if not django_apps.is_installed("consentry.developers"):
        return []
    try:
        decision = django_apps.get_model("developers", "ReviewDecision")
    except LookupError:
        return []
    return list(
        decision.objects.filter(application_id=app_id)
        .order_by("-decided_at")
        .values("decided_at", "permission", "approved", "reason", "staff_email")[:100]
    )


def investigate(app: Application) -> Investigation:
    radius = blast_radius(app.pk)
    per_field = Counter(f for mask in radius.values() for f in mask_to_fields(mask))
    now = timezone.now()
    consents = Consent.objects.filter(application_id=app.pk)
    active = consents.filter(revoked_at__isnull=True, expires_at__gt=now)
    recent = [
        {
            "person": c.person.name,
            "created_at": c.created_at,
            "revoked_at": c.revoked_at,
            "permissions": sorted(mask_to_permissions(c.permission_mask)),
        }
        for c in consents.select_related("person").order_by("-created_at")[:20]
    ]
    return Investigation(
        app=app,
        figures=figures_for_app(app.pk),
        firings=firings_for_app(app.pk),
        people_reached=len(radius),
        people_per_field=[(f, per_field[f]) for f in RELEASE_FIELDS if per_field.get(f)],
        ledger_calls=CallRecord.objects.filter(app_id=app.pk).count(),
        grants_active=active.count(),
        grants_total=consents.count(),
        recent_grants=recent,
        cases=list(Case.objects.filter(app_id=app.pk).order_by("-opened_at")),
        audits=list(AuditRequest.objects.filter(app_id=app.pk).order_by("-requested_at")),
        attestations=list(
            DeletionAttestation.objects.filter(app_id=app.pk).order_by("-attested_at")
        ),
        sightings=list(CanarySighting.objects.filter(app_id=app.pk).order_by("-seen_at")),
        reports=list(AbuseReport.objects.filter(app_id=app.pk).order_by("-created_at")),
        incidents=list(Incident.objects.filter(app_id=app.pk).order_by("-banned_at")),
        review={
            "status": app.get_status_display(),
            "approved_permissions": list(app.approved_permissions or []),
            "agreement_signed_at": app.agreement_signed_at,
            "created": getattr(app, "created", None),
            "decisions": review_history(app.pk),
        },
    )
