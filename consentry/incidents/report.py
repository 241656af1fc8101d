"""The incident report: what a GDPR Article 33 notification to the supervisory authority
needs, drafted from the records (docs/detection.md).

Article 33(3) asks for: (a) the nature of the breach, with the categories and approximate
number of data subjects and of records concerned; (b) a contact point; (c) the likely
consequences; (d) the measures taken or proposed. The counts here are exact: they come
from the disclosure ledger (the affected set the ban notified), not an estimate.
"""

from __future__ import annotations

from typing import Any

from consentry.detection.api import firings_for_app
from consentry.incidents.models import (
    AbuseReport,
    AuditRequest,
    CanarySighting,
    DeletionAttestation,
    Incident,
)
from consentry.incidents.notices import FIELD_LABELS


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def incident_report(incident: Incident) -> dict[str, Any]:
    """The report as plain JSON-ready data (the page and the JSON view render this)."""
    app_id = incident.app_id
    timeline: list[dict[str, Any]] = []
    if incident.first_disclosure_at:
        timeline.append(
            {"at": _iso(incident.first_disclosure_at), "event": "first disclosure to the app"}
        )
    for f in firings_for_app(app_id):
        if f.fired_at <= incident.banned_at:
            timeline.append(
                {
                    "at": _iso(f.fired_at),
                    "event": f"detection rule {f.rule} fired: {f.action}",
                    "figures": f.figures,
                }
            )
    for r in AbuseReport.objects.filter(app_id=app_id).order_by("created_at"):
        timeline.append({"at": _iso(r.created_at), "event": f"abuse report {r.pk} received"})
    if incident.case_id and incident.case:
        timeline.append({"at": _iso(incident.case.opened_at), "event": "case opened"})
    for a in AuditRequest.objects.filter(app_id=app_id).order_by("requested_at"):
        timeline.append({"at": _iso(a.requested_at), "event": "audit required of the developer"})
        if a.answered_at:
            timeline.append({"at": _iso(a.answered_at), "event": "developer answered the audit"})
    for d in DeletionAttestation.objects.filter(app_id=app_id).order_by("attested_at"):
        timeline.append({"at": _iso(d.attested_at), "event": "developer attested deletion"})
    for s in CanarySighting.objects.filter(app_id=app_id).order_by("seen_at"):
        timeline.append({"at": _iso(s.seen_at), "event": f"canary seen: {s.get_kind_display()}"})
    if incident.last_disclosure_at:
        timeline.append(
            {"at": _iso(incident.last_disclosure_at), "event": "last disclosure to the app"}
        )
    timeline.append(
        {
            "at": _iso(incident.banned_at),
            "event": (
                f"app banned: {incident.consents_revoked} grants revoked, "
                f"{incident.tokens_revoked} access tokens deleted, API access blocked"
            ),
        }
    )
    if incident.notices_started_at:
        timeline.append({"at": _iso(incident.notices_started_at), "event": "notices started"})
    if incident.notices_done_at:
        timeline.append(
            {
                "at": _iso(incident.notices_done_at),
                "event": f"every affected person notified ({incident.notified})",
            }
        )
    timeline.sort(key=lambda e: e["at"] or "")

    categories = [
        {"field": field, "label": str(FIELD_LABELS.get(field, field)), "people": count}
        for field, count in sorted(
            (incident.people_per_field or {}).items(), key=lambda kv: (-kv[1], kv[0])
        )
    ]
    measures = [
        "The app was banned: its status blocks every OAuth and Graph API use.",
        f"All {incident.consents_revoked} grants to the app were revoked and "
        f"{incident.tokens_revoked} access tokens deleted at the moment of the ban.",
        (
            f"Every affected person ({incident.affected_total}) was sent a notice"
            if incident.status == Incident.Status.NOTIFIED
            else "Every affected person is being sent a notice"
        )
        + " listing exactly which of their data the app received, when, and through which "
        "friend (privacy-center inbox and email).",
        "Canary seed accounts and relay addresses are watched for later use of the data.",
    ]
    if AuditRequest.objects.filter(app_id=app_id).exists():
        measures.append("The developer was required to answer an audit.")
    attestations = [
        {
            "attested_at": _iso(d.attested_at),
            "statement": d.statement,
            "false": d.is_false,
            "contradicted_at": _iso(d.contradicted_at),
        }
        for d in DeletionAttestation.objects.filter(app_id=app_id).order_by("attested_at")
    ]
    return {
        "incident": incident.pk,
        "app": {"id": app_id, "name": incident.app_name},
        "status": incident.status,
        "banned_at": _iso(incident.banned_at),
        "reason": incident.reason,
        "people_affected": incident.affected_total,
        "people_notified": incident.notified,
        "ledger_entries_considered": incident.ledger_size,
        "categories": categories,
        "timeline": timeline,
        "measures": measures,
        "deletion_attestations": attestations,
        "article_33": {
            "nature": (
                f"The third-party app “{incident.app_name}” received personal data through "
                "the platform's Graph API and was found to misuse it (harvest detection, "
                "investigation). Data left the platform only under each person's or their "
                "friend's grant; every disclosure is recorded in the disclosure ledger."
            ),
            "categories_of_data_subjects": "platform members whose data the app received",
            "number_of_data_subjects": incident.affected_total,
            "categories_of_personal_data": [c["field"] for c in categories],
            "number_of_records": sum(c["people"] for c in categories),
            "contact_point": "",
            "likely_consequences": (
                "Profiling and unsolicited targeting of the affected people with the data "
                "listed; the app holds no passwords, no email addresses of people other than "
                "its own users, and no global identifiers."
            ),
            "measures_taken": measures,
        },
    }
