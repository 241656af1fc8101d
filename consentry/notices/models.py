"""Messages from the platform to a person: an inbox in the privacy center, also sent by
email (consentry/notices/tasks.py). Example: an app you used was banned, and what of
yours it had received and when."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Notice(models.Model):
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notices"
    )
    # A short machine name of what happened, e.g. "app_banned", "export_ready".
    kind = models.CharField(max_length=40)
    title = models.CharField(max_length=300)
    body = models.TextField()
    # What the notice is about, for pages and exports (app id, fields, times...).
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["person", "-created_at"], name="notice_person_recent")]

    def __str__(self) -> str:
        return f"{self.kind} for person {self.person_id}: {self.title}"

    @property
    def is_read(self) -> bool:
        return self.read_at is not None
