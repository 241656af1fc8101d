"""The developer platform's records: developer accounts, roles on apps, declared
purposes, signed data-use agreements, review requests and decisions, recertification,
rotated client secrets, and signed callbacks to apps with their delivery log.

`SignedAgreement` and `ReviewDecision` are append-only: database triggers
(migrations/0002_append_only.py) refuse UPDATE of their rows on SQLite and PostgreSQL,
and DELETE on PostgreSQL (SQLite's test flush deletes rows one statement at a time, so
there the models refuse deletion instead). Such records keep `*_email` copies so they
outlive the person's account.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

APP_MODEL = settings.OAUTH2_PROVIDER_APPLICATION_MODEL


class DeveloperAccount(models.Model):
    """A person who accepted the platform terms and may register apps."""

    person = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="developer_account"
    )
    terms_version = models.CharField(max_length=20)
    accepted_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"developer {self.person_id}"


class Role(models.TextChoices):
    ADMIN = "admin", "admin"
    DEVELOPER = "developer", "developer"
    TESTER = "tester", "tester"


class AppRole(models.Model):
    """A person's role on an app. Every role also puts the person in
    `Application.members`, which the release rule reads (in development mode only members
    may use the app)."""

    application = models.ForeignKey(APP_MODEL, on_delete=models.CASCADE, related_name="roles")
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="app_role_rows"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application", "person"], name="app_role_unique")
        ]

    def __str__(self) -> str:
        return f"{self.role} of app {self.application_id}"


class AppInvitation(models.Model):
    """An invitation to a role, addressed to a sign-in email; accepted by its invitee in
    their own console."""

    application = models.ForeignKey(APP_MODEL, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"invitation to app {self.application_id} as {self.role}"

    def is_open(self) -> bool:
        return self.accepted_at is None and self.withdrawn_at is None


class AppProfile(models.Model):
    """What the developer console adds to an app: public links, callback URLs, icon,
    test instructions for review, certification, and the callback signing secret."""

    application = models.OneToOneField(
        APP_MODEL, on_delete=models.CASCADE, related_name="developer_profile"
    )
    website = models.URLField(max_length=500, blank=True)
    privacy_policy_url = models.URLField(max_length=500, blank=True)
    deauthorize_callback_url = models.URLField(max_length=500, blank=True)
    data_deletion_callback_url = models.URLField(max_length=500, blank=True)
    test_instructions = models.TextField(blank=True)
    icon = models.BinaryField(null=True, blank=True)
    icon_content_type = models.CharField(max_length=20, blank=True)
    # The current client secret, encrypted with a key derived from SECRET_KEY
    # (developers/secrets.py): callbacks are signed with it, so it cannot be only hashed.
    signing_secret = models.TextField(blank=True)
    # Annual recertification (developers/rules.py): counted from going live or the last
    # recertification; `lapsed_at` while the reviewed permissions are withdrawn.
    certified_at = models.DateTimeField(null=True, blank=True)
    last_reminder_days = models.PositiveSmallIntegerField(null=True, blank=True)
    lapsed_at = models.DateTimeField(null=True, blank=True)
    unused_tokens_cleared_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"profile of app {self.application_id}"


class PreviousClientSecret(models.Model):
    """A rotated-out client secret (hashed like the current one) that still authenticates
    the client until `expires_at`: the grace period the developer chose (at most 24 h)."""

    application = models.ForeignKey(
        APP_MODEL, on_delete=models.CASCADE, related_name="previous_secrets"
    )
    secret_hash = models.CharField(max_length=255)
    signing_secret = models.TextField(blank=True)
    rotated_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"previous secret of app {self.application_id}"

    def is_valid(self, now: datetime | None = None) -> bool:
        return self.expires_at > (now or timezone.now())


class DeclarationStatus(models.TextChoices):
    DRAFT = "draft", "not submitted"
    PENDING = "pending", "waiting for review"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"


class PermissionDeclaration(models.Model):
    """What a developer declares for one permission the app requests: the purpose in
    plain words (shown on the consent screen) and how long data is kept; and where
    staff review stands."""

    application = models.ForeignKey(
        APP_MODEL, on_delete=models.CASCADE, related_name="declarations"
    )
    permission = models.CharField(max_length=40)
    purpose = models.TextField()
    retention_days = models.PositiveIntegerField()
    status = models.CharField(
        max_length=10, choices=DeclarationStatus.choices, default=DeclarationStatus.DRAFT
    )
    reason = models.TextField(blank=True)  # the staff reason the developer sees
    decided_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["application", "permission"], name="declaration_one_per_permission"
            )
        ]

    def __str__(self) -> str:
        return f"{self.permission} of app {self.application_id}: {self.status}"


class SignedAgreement(models.Model):
    """One signature of the data-use agreement. Immutable: `text` is exactly what was
    signed and `sha256` its hash (developers/agreement.py); triggers refuse changes."""

    application = models.ForeignKey(
        APP_MODEL, on_delete=models.PROTECT, related_name="signed_agreements"
    )
    version = models.CharField(max_length=20)
    text = models.TextField()
    sha256 = models.CharField(max_length=64)
    # No database constraint and no cascade: the row may not change, and it outlives the
    # signer's account (the name and email copies stay).
    signer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    signer_name = models.CharField(max_length=200)
    signer_email = models.CharField(max_length=254)
    signed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"agreement {self.version} for app {self.application_id}"

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("signed agreements are append-only")


class ReviewRequest(models.Model):
    """A developer's submission of declarations for staff review."""

    application = models.ForeignKey(
        APP_MODEL, on_delete=models.CASCADE, related_name="review_requests"
    )
    permissions = models.JSONField(default=list)
    test_instructions = models.TextField(blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    submitted_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"review request {self.pk} for app {self.application_id}"


class ReviewDecision(models.Model):
    """One staff decision on one permission of one app. Append-only (triggers)."""

    application = models.ForeignKey(
        APP_MODEL, on_delete=models.PROTECT, related_name="review_decisions"
    )
    review_request = models.ForeignKey(
        ReviewRequest,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="decisions",
    )
    permission = models.CharField(max_length=40)
    approved = models.BooleanField()
    reason = models.TextField()
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    staff_email = models.CharField(max_length=254)  # or "operator (CLI)"
    decided_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        verdict = "approved" if self.approved else "rejected"
        return f"{self.permission} {verdict} for app {self.application_id}"

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("review decisions are append-only")


class CallbackKind(models.TextChoices):
    DEAUTHORIZE = "deauthorize", "deauthorize"
    DATA_DELETION = "data_deletion", "data deletion request"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "gave up"


class CallbackDelivery(models.Model):
    """A signed callback to an app, retried with exponential backoff for 3 days.
    `body` is kept exactly as signed and sent."""

    application = models.ForeignKey(
        APP_MODEL, on_delete=models.CASCADE, related_name="callback_deliveries"
    )
    kind = models.CharField(max_length=16, choices=CallbackKind.choices)
    url = models.URLField(max_length=500)
    body = models.TextField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} callback {self.pk} to app {self.application_id}: {self.status}"


class CallbackAttempt(models.Model):
    """One try of a callback delivery: when, and what came back."""

    delivery = models.ForeignKey(
        CallbackDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"attempt {self.pk} of callback {self.delivery_id}"

    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class DataDeletionRequest(models.Model):
    """A person asked an app to delete their data. The person follows it at its status
    URL (`/developers/deletion/<confirmation_code>`); the app confirms completion with a
    signed call back, recorded with its time."""

    application = models.ForeignKey(
        APP_MODEL, on_delete=models.CASCADE, related_name="deletion_requests"
    )
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    app_scoped_id = models.CharField(max_length=100)
    confirmation_code = models.CharField(max_length=64, unique=True)
    requested_at = models.DateTimeField(default=timezone.now)
    delivery = models.ForeignKey(
        CallbackDelivery, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"deletion request {self.confirmation_code[:6]}… to app {self.application_id}"
