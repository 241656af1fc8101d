"""Harvest detection's public face for other capabilities (staff console, incident
reports, the replay): read-only functions over plain data.

    firings_for_app(app_id)  -> [FiringRecord]  every rule firing, oldest first
    figures_for_app(app_id)  -> rules.Figures   the app's figures now
    samples_for_app(app_id)  -> [(datetime, Figures)] figures over time (charts)
    apps_by_risk()           -> [AppRisk]       every app that fired or was sampled
    open_alerts()            -> [FiringRecord]  firings staff have not cleared

The rules and their default thresholds: consentry.detection.rules.DEFAULT_RULES.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Max

from consentry.detection import rules as R
from consentry.detection.engine import detector
from consentry.detection.models import FigureSample, Firing

__all__ = [
    "AppRisk",
    "FiringRecord",
    "apps_by_risk",
    "figures_for_app",
    "firings_for_app",
    "open_alerts",
    "risk_score",
    "samples_for_app",
]


@dataclass(frozen=True)
class FiringRecord:
    id: int
    app_id: int
    rule: str
    action: str
    fired_at: datetime
    figures: dict[str, Any]
    thresholds: dict[str, Any]
    snapshot: dict[str, Any]
    throttle_seconds: int
    cleared_at: datetime | None

    @classmethod
    def of(cls, row: Firing) -> FiringRecord:
        return cls(
            id=row.pk,
            app_id=row.app_id,
            rule=row.rule,
            action=row.action,
            fired_at=row.fired_at,
            figures=dict(row.figures),
            thresholds=dict(row.thresholds),
            snapshot=dict(row.snapshot),
            throttle_seconds=row.throttle_seconds,
            cleared_at=row.cleared_at,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "action": self.action,
            "fired_at": self.fired_at.isoformat(),
            "figures": self.figures,
            "thresholds": self.thresholds,
            "throttle_seconds": self.throttle_seconds,
        }


def firings_for_app(app_id: int) -> list[FiringRecord]:
    """Every rule firing of the app, oldest first, with the figures that fired it."""
    return [
        FiringRecord.of(row)
        for row in Firing.objects.filter(app_id=app_id).order_by("fired_at", "pk")
    ]


def open_alerts(limit: int = 200) -> list[FiringRecord]:
    return [
        FiringRecord.of(row)
        for row in Firing.objects.filter(cleared_at__isnull=True).order_by("-fired_at", "-pk")[
            :limit
        ]
    ]


def figures_for_app(app_id: int) -> R.Figures:
    """The app's figures now: this process's counts merged with every other process's."""
    d = detector()
    d.sync(app_id)
    return d.figures(app_id)


def samples_for_app(app_id: int, limit: int = 2000) -> list[tuple[datetime, R.Figures]]:
    rows = FigureSample.objects.filter(app_id=app_id).order_by("-at", "-pk")[:limit]
    return [(row.at, R.Figures.from_dict(row.figures)) for row in reversed(list(rows))]


def risk_score(figures: R.Figures, firings: list[FiringRecord]) -> float:
    """A ranking key for staff, not a rule: the most severe firing dominates, then how far
    the figures are past the alert thresholds."""
    severity = max((R.SEVERITY[f.action] for f in firings if f.cleared_at is None), default=0)
    pressure = (
        min(figures.amplification / 5.0, 10.0)
        + min(figures.withheld_share / 0.5, 2.0)
        + min(figures.not_found_rate / 0.05, 10.0)
        + min(figures.world_share / 0.05, 10.0)
    )
    return severity * 100.0 + pressure


@dataclass(frozen=True)
class AppRisk:
    app_id: int
    score: float
    figures: R.Figures
    firings: list[FiringRecord]
    last_seen: datetime | None


def apps_by_risk(limit: int = 100) -> list[AppRisk]:
    """Apps with detection data, riskiest first, from their latest figure sample."""
    latest = dict(
        FigureSample.objects.values("app_id").annotate(last=Max("pk")).values_list("app_id", "last")
    )
    samples = {s.app_id: s for s in FigureSample.objects.filter(pk__in=list(latest.values()))}
    by_app: dict[int, list[FiringRecord]] = {}
    for row in Firing.objects.order_by("fired_at", "pk"):
        by_app.setdefault(row.app_id, []).append(FiringRecord.of(row))
    out = []
    for app_id in set(samples) | set(by_app):
        sample = samples.get(app_id)
        figures = R.Figures.from_dict(sample.figures) if sample else R.Figures()
        firings = by_app.get(app_id, [])
        out.append(
            AppRisk(
                app_id=app_id,
                score=risk_score(figures, firings),
                figures=figures,
                firings=firings,
                last_seen=sample.at if sample else None,
            )
        )
    out.sort(key=lambda r: (-r.score, r.app_id))
    return out[:limit]
