"""What the privacy center stores of its own: deletion requests and data exports."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

EXPORT_LIFETIME = timedelta(days=7)


class DeletionRequest(models.Model):
    """A person removed an app and asked it to delete their data.

    The app is told through a callback (the developer platform adds it and moves the
    status on); until then a request stays "requested". The confirmation code is what the
    person quotes to the app or to staff. `app_id` is a plain integer so the request
    outlives the app."""

    class Status(models.TextChoices):
        REQUESTED = "requested"
        SENT = "sent"  # the app was told (callback delivered)
        CONFIRMED = "confirmed"  # the app confirmed the deletion
        FAILED = "failed"  # the callback could not be delivered

    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deletion_requests"
    )
    app_id = models.BigIntegerField()
    app_name = models.CharField(max_length=255)
    code = models.CharField(max_length=32, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REQUESTED)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # The signed data-deletion callback to the app and its confirmation (developer
    # platform); null when the app was gone or the request predates it.
    callback_request = models.OneToOneField(
        "developers.DataDeletionRequest",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="privacy_request",
    )

    class Meta:
        indexes = [models.Index(fields=["person", "-created_at"], name="deletion_person_recent")]

    def __str__(self) -> str:
        return f"deletion request {self.code}"

    def current_status(self) -> str:
        """The status as the person should see it now: confirmed once the app confirmed
        by signed call back, sent once the callback was delivered, failed when its
        retries ran out, else requested."""
        linked = self.callback_request
        if linked is None:
            return str(self.status)
        if linked.completed_at is not None:
            return self.Status.CONFIRMED
        delivery = linked.delivery
        if delivery is not None and delivery.delivered_at is not None:
            return self.Status.SENT
        if delivery is not None and delivery.status == "failed":
            return self.Status.FAILED
        return self.Status.REQUESTED


class DataExport(models.Model):
    """One "download my data" job (GDPR Art. 15 and 20): built in the background, with
    progress, downloadable for EXPORT_LIFETIME. One unfinished job per person at a time
    (a partial unique constraint, so even two racing requests cannot start two)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        READY = "ready"
        FAILED = "failed"

    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="data_exports"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The ZIP's file name under settings.VAR_DIR / "exports" (one shared VAR_DIR, or a
    # shared volume there, when several machines run workers).
    file_name = models.CharField(max_length=80, blank=True)
    size = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["person"],
                condition=models.Q(status__in=["queued", "running"]),
                name="export_one_unfinished_per_person",
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} of {self.person_id}"

    def is_downloadable(self) -> bool:
        return (
            self.status == self.Status.READY
            and self.expires_at is not None
            and self.expires_at > timezone.now()
        )

    def is_unfinished(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)
