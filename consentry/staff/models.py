"""The staff audit trail: every staff action, append-only.

Rows are never updated or deleted by the application (save() refuses an update, delete()
refuses), and the database refuses it too (triggers in migrations/0002_audit_append_only).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove an audit record."""


class StaffAuditEvent(models.Model):
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_actions"
    )
    # What was done, as a short dotted name: "review.approve", "app.ban", "case.open"...
    action = models.CharField(max_length=60)
    # What it was done to: "app:12", "report:7", "person:3".
    target = models.CharField(max_length=120)
    details = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["target", "at"], name="staffaudit_target_at"),
            models.Index(fields=["at"], name="staffaudit_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.staff_id} {self.action} {self.target}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise AppendOnlyError("staff audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("staff audit events are append-only")
