"""The public transparency card of an app (/apps/<id>): what it is, who made it, its
review status, the permissions it may ask for and why, how many people use it, and --
from the ledger -- how many people's data it received and which fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from pyroaring import BitMap

from consentry.grants.models import Consent
from consentry.grants.permissions import PERMISSIONS, RELEASE_FIELDS
from consentry.ledger.api import catch_up_index
from consentry.ledger.models import AppReach
from consentry.oauth.consent import LABELS as PERMISSION_LABELS
from consentry.oauth.models import Application, AppStatus
from consentry.privacy.labels import FIELD_LABELS, STATUS_LABELS


@dataclass(frozen=True)
class PermissionLine:
    name: str
    label: str
    purpose: str
    approved: bool


@dataclass(frozen=True)
class AppCard:
    app_id: int
    name: str
    description: str
    icon_url: str
    developer: str
    status: str
    status_label: str
    status_since: datetime
    agreement_signed_at: datetime | None
    permissions: list[PermissionLine]
    users: int
    people_reached: int
    fields_received: list[tuple[str, int]]  # (label, people)


def app_card(app_id: int) -> AppCard | None:
    """The card, or None for an unknown app or one still in development (not public)."""
    app = Application.objects.select_related("user").filter(pk=app_id).first()
    if app is None or app.status == AppStatus.DEVELOPMENT:
        return None
    now = timezone.now()
    users = Consent.objects.filter(
        application_id=app_id, revoked_at__isnull=True, expires_at__gt=now
    ).count()
    catch_up_index()
    bitmaps = {
        bit: BitMap.deserialize(bytes(blob))
        for bit, blob in AppReach.objects.filter(app_id=app_id).values_list("bit", "bitmap")
    }
    reached = BitMap.union(BitMap(), *bitmaps.values()) if bitmaps else BitMap()
    fields = [
        (str(FIELD_LABELS.get(RELEASE_FIELDS[bit], RELEASE_FIELDS[bit])), len(bm))
        for bit, bm in sorted(bitmaps.items())
        if bit < len(RELEASE_FIELDS) and len(bm)
    ]
    approved = set(app.approved_permissions or ())
    wanted = set(app.purposes or {}) | approved
    lines = [
        PermissionLine(
            name=name,
            label=str(PERMISSION_LABELS.get(name, name)),
            purpose=str((app.purposes or {}).get(name, "")),
            approved=perm.basic or name in approved,
        )
        for name, perm in PERMISSIONS.items()
        if name in wanted or perm.basic
    ]
    return AppCard(
        app_id=app.pk,
        name=app.name,
        description=app.description,
        icon_url=app.icon_url,
        developer=(app.user.name if app.user_id else ""),
        status=app.status,
        status_label=str(STATUS_LABELS.get(app.status, app.status)),
        status_since=app.updated,
        agreement_signed_at=app.agreement_signed_at,
        permissions=lines,
        users=users,
        people_reached=len(reached),
        fields_received=fields,
    )
