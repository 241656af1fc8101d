"""Harvest detection's tables: rule settings, rule firings (with the figures that fired
them), figure samples over time (the investigation page's charts) and each app's merged
detector state (Roaring bitmaps and counters, so figures survive restarts and several
worker processes add up).

App ids are plain integers, as in the ledger: the record of a firing outlives the app."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class RuleSetting(models.Model):
    """An operator's override of one default rule (consentry.detection.rules), for every
    app (`app_id` null) or for one app. `when` maps a metric of the rule to a new minimum."""

    rule = models.CharField(max_length=40)
    app_id = models.BigIntegerField(null=True, blank=True)
    enabled = models.BooleanField(null=True, blank=True)
    when = models.JSONField(default=dict, blank=True)
    throttle_seconds = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "app_id"], name="rulesetting_one_per_rule_app"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} for {self.app_id or 'every app'}"


class Firing(models.Model):
    """One rule firing: which rule, its action, when, and the figures that fired it.
    Append-only; `cleared_at` is set when staff dismiss an alert (it may fire again)."""

    app_id = models.BigIntegerField()
    rule = models.CharField(max_length=40)
    action = models.CharField(max_length=10)
    fired_at = models.DateTimeField(default=timezone.now)
    # The metrics of the rule's conditions and their minimums at the time.
    figures = models.JSONField(default=dict)
    thresholds = models.JSONField(default=dict)
    # Every figure of the app at that moment.
    snapshot = models.JSONField(default=dict)
    throttle_seconds = models.PositiveIntegerField(default=0)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["app_id", "fired_at"], name="firing_app_time"),
            models.Index(fields=["fired_at"], name="firing_time"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} ({self.action}) on app {self.app_id}"


class FigureSample(models.Model):
    """An app's figures at one moment (consentry.detection.rules.Figures.as_dict())."""

    app_id = models.BigIntegerField()
    at = models.DateTimeField(default=timezone.now)
    figures = models.JSONField(default=dict)

    class Meta:
        indexes = [models.Index(fields=["app_id", "at"], name="figuresample_app_time")]

    def __str__(self) -> str:
        return f"figures of app {self.app_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class DetectorState(models.Model):
    """Every process's detector state for one app, merged: the Roaring bitmaps of subjects
    reached and of acting people seen (OR-ed), and the counters (added)."""

    app_id = models.BigIntegerField(primary_key=True)
    subjects = models.BinaryField(default=b"")
    actors = models.BinaryField(default=b"")
    counters = models.JSONField(default=dict)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"detector state of app {self.app_id}"
