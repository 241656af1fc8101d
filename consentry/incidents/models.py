"""Incident response (docs/detection.md): cases, audits
required of developers, bans with their notification progress, deletion attestations,
canary seed accounts and their sightings, and abuse reports.

App and staff ids are plain integers where the record must outlive the row it names
(an incident report stays after an app is deleted)."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Case(models.Model):
    """A staff investigation of one app."""

    class Status(models.TextChoices):
        OPEN = "open", "open"
        CLOSED = "closed", "closed"

    app_id = models.BigIntegerField(db_index=True)
    opened_by_id = models.BigIntegerField(null=True, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    summary = models.TextField(blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"case {self.pk} on app {self.app_id}"


class AuditRequest(models.Model):
    """Staff require an audit: the developer must answer by `deadline` in the developer
    console."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="audits")
    app_id = models.BigIntegerField(db_index=True)
    requested_by_id = models.BigIntegerField(null=True, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    questions = models.TextField()
    deadline = models.DateTimeField()
    answer = models.TextField(blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by_id = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"audit {self.pk} of app {self.app_id}"

    def is_overdue(self, now: object = None) -> bool:
        return self.answered_at is None and (now or timezone.now()) > self.deadline  # type: ignore[operator]


class Incident(models.Model):
    """A ban and what followed it: the affected set from the ledger and the notices."""

    class Status(models.TextChoices):
        NOTIFYING = "notifying", "notifying"
        NOTIFIED = "notified", "notified"

    app_id = models.BigIntegerField(db_index=True)
    app_name = models.CharField(max_length=255)
    case = models.ForeignKey(Case, on_delete=models.SET_NULL, null=True, blank=True)
    banned_by_id = models.BigIntegerField(null=True, blank=True)
    banned_at = models.DateTimeField(default=timezone.now)
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NOTIFYING)
    # Revoked at the ban, in its transaction.
    consents_revoked = models.IntegerField(default=0)
    tokens_revoked = models.IntegerField(default=0)
    # Filled by the notification task: the ledger's blast radius and progress through it.
    ledger_size = models.BigIntegerField(null=True, blank=True)
    affected_total = models.IntegerField(null=True, blank=True)
    notified = models.IntegerField(default=0)
    people_per_field = models.JSONField(default=dict, blank=True)
    first_disclosure_at = models.DateTimeField(null=True, blank=True)
    last_disclosure_at = models.DateTimeField(null=True, blank=True)
    notices_started_at = models.DateTimeField(null=True, blank=True)
    notices_done_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"incident {self.pk}: ban of app {self.app_id}"

    @property
    def progress(self) -> float:
        if not self.affected_total:
            return 1.0 if self.status == self.Status.NOTIFIED else 0.0
        return min(1.0, self.notified / self.affected_total)


class DeletionAttestation(models.Model):
    """A developer's statement that they deleted data, with its date. A canary seen after
    `attested_at` marks it false (`contradicted_at`, `contradicted_by`)."""

    app_id = models.BigIntegerField(db_index=True)
    attested_at = models.DateTimeField(default=timezone.now)
    statement = models.TextField()
    recorded_by_id = models.BigIntegerField(null=True, blank=True)
    contradicted_at = models.DateTimeField(null=True, blank=True)
    contradicted_by = models.ForeignKey(
        "CanarySighting", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"deletion attestation {self.pk} of app {self.app_id}"

    @property
    def is_false(self) -> bool:
        return self.contradicted_at is not None


class CanaryAccount(models.Model):
    """A staff-operated seed account installed in one app, with values unique to that app.
    Never a friend of anyone, never counted in detection figures."""

    person = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="canary"
    )
    app_id = models.BigIntegerField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The values only this app was given: name, birthday, hometown, likes.
    values = models.JSONField(default=dict)
    relay_address = models.CharField(max_length=254, unique=True)

    def __str__(self) -> str:
        return f"canary {self.pk} for app {self.app_id}"


class CanarySighting(models.Model):
    """A canary seen outside the app it was given to: in a leaked file, or mail to its
    relay address."""

    class Kind(models.TextChoices):
        FILE_ID = "file_id", "app-scoped id in a leaked file"
        FILE_VALUE = "file_value", "seed account value in a leaked file"
        MAIL = "mail", "mail to a relay address"

    app_id = models.BigIntegerField(db_index=True)
    canary = models.ForeignKey(CanaryAccount, on_delete=models.SET_NULL, null=True, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    seen_at = models.DateTimeField(default=timezone.now)
    detail = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"sighting of app {self.app_id} ({self.kind})"


class AbuseReport(models.Model):
    """A report of data misuse by an app (the data-abuse bounty). The reporter follows it
    by a secret link; only the secret's SHA-256 is stored."""

    class Status(models.TextChoices):
        NEW = "new", _("new")
        INVESTIGATING = "investigating", _("investigating")
        CONFIRMED = "confirmed", _("confirmed")
        REJECTED = "rejected", _("rejected")

    app_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    app_name = models.CharField(max_length=200)
    description = models.TextField()
    contact_email = models.EmailField(blank=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.NEW)
    case = models.ForeignKey(Case, on_delete=models.SET_NULL, null=True, blank=True)
    reward_amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    staff_note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"abuse report {self.pk}"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()
