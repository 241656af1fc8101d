"""Background work of the developer platform on Django's Tasks API.

The lifecycle sweep (grant expiry, unused apps, recertification, callback retries, and
the ledger's partitions) runs
every SWEEP_INTERVAL: each run queues the next one with `run_after`, and
`ensure_lifecycle_scheduled()` (called when a worker starts) queues the first. Since the
schedule lives in the task queue, tests drive it by moving the clock and running ready
tasks.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from django_tasks import task

from consentry.developers import callbacks
from consentry.developers.lifecycle import run_lifecycle
from consentry.ledger.partitions import ensure_partitions

SWEEP_INTERVAL = timedelta(minutes=10)
_QUEUED_KEY = "consentry:lifecycle-sweep-queued"


@task()
def deliver_callback_task(delivery_id: int) -> str:
    """Try one callback delivery now (retries are picked up by the lifecycle sweep)."""
    return callbacks.deliver(delivery_id)


@task()
def lifecycle_sweep_task() -> dict[str, Any]:
    """Every lifecycle job once, and the ledger's call-record partitions kept ahead of its
    head (not a developer matter, but the same schedule: consentry/ledger/partitions.py),
    then queue the next sweep (even when this one failed: the schedule must not die with
    one bad run, and neither job skips the other)."""
    try:
        try:
            partitions = ensure_partitions()
        finally:
            report = asdict(run_lifecycle())
        return {**report, "ledger_partitions_created": partitions}
    finally:
        ensure_lifecycle_scheduled(timezone.now() + SWEEP_INTERVAL, continuing=True)


def ensure_lifecycle_scheduled(run_after: Any = None, *, continuing: bool = False) -> None:
    """Queue a lifecycle sweep unless one is already waiting. The database backend is
    asked directly; on RQ a key in the shared (Redis) cache, renewed by each sweep
    (`continuing`), says a chain of sweeps is alive, so a restarted worker does not start
    a second one (an extra sweep would be harmless anyway: every job is idempotent)."""
    from consentry.web.worker import uses_database_backend

    if uses_database_backend():
        from django_tasks_db.models import DBTaskResult

        waiting = DBTaskResult.objects.filter(
            task_path=lifecycle_sweep_task.module_path, status="READY"
        ).exists()
        if waiting:
            return
    elif continuing:
        cache.set(_QUEUED_KEY, 1, SWEEP_INTERVAL.total_seconds() * 2)
    elif not cache.add(_QUEUED_KEY, 1, SWEEP_INTERVAL.total_seconds() * 2):
        return
    sweep = lifecycle_sweep_task.using(run_after=run_after) if run_after else lifecycle_sweep_task
    sweep.enqueue()
