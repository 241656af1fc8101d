"""Writes of harvest detection: rule firings and what they do (docs/rules.md rules 1 and 4)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from consentry.detection import rules as R
from consentry.detection.models import Firing
from consentry.graph import limits
from consentry.oauth.models import Application, AppStatus
from consentry.oauth.tokens import forget_tokens


def do_record_firings(
    app_id: int, decisions: Sequence[R.Decision], figures: R.Figures
) -> list[Firing]:
    """Store each firing with the figures that fired it and act on it, in one transaction:
    a throttle refuses the app's calls for its length (rule 4, consentry.graph.limits);
    a suspension moves a live or in-development app to `suspended` pending review (rule 1
    refuses it from the next call on)."""
    now = timezone.now()
    snapshot = figures.as_dict()
    rows = [
        Firing(
            app_id=app_id,
            rule=d.rule.name,
            action=d.rule.action,
            fired_at=now,
            figures=d.figures,
            thresholds=dict(d.rule.when),
            snapshot=snapshot,
            throttle_seconds=d.rule.throttle_seconds if d.rule.action == R.THROTTLE else 0,
        )
        for d in decisions
    ]
    with transaction.atomic():
        Firing.objects.bulk_create(rows)
        if any(d.rule.action == R.SUSPEND for d in decisions):
            Application.objects.filter(
                pk=app_id, status__in=(AppStatus.LIVE, AppStatus.DEVELOPMENT)
            ).update(status=AppStatus.SUSPENDED)
            # update() sends no signal: tell every process's token cache at once.
            forget_tokens(app_ids=[app_id])
    for d in decisions:
        if d.rule.action == R.THROTTLE:
            limits.throttle_app(app_id, d.rule.throttle_seconds)
    return rows


def do_clear_firing(firing: Firing, staff_id: int | None) -> None:
    """Staff dismissed an alert: it may fire again if its condition still holds."""
    from consentry.detection.engine import detector

    with transaction.atomic():
        Firing.objects.filter(pk=firing.pk, cleared_at__isnull=True).update(
            cleared_at=timezone.now(), cleared_by_id=staff_id
        )
    # This process reloads the app's state, and with it the open firings, on its next call;
    # with Redis the rule's claim is released so that any process may record it again.
    detector().cleared(firing.app_id, firing.rule)
