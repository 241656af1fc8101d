"""What the replay keeps in its demo database."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class DemoWorld(models.Model):
    """Marks a database whose world `consentry demo` generated into an empty database.
    `consentry replay` refuses any database without it: the replay writes simulated
    grants and disclosures (and, for the legacy comparison, disclosures no real policy
    allows), which have no place in an operator's real database."""

    people = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"demo world of {self.people} people (seed {self.seed})"


class ReplayReport(models.Model):
    """The report of a finished replay (consentry.replay.report), shown at /demo/report."""

    created_at = models.DateTimeField(default=timezone.now)
    report = models.JSONField()

    def __str__(self) -> str:
        return f"replay report {self.pk}"
