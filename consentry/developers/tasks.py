"""Background work of the developer platform on Django's Tasks API.

The lifecycle sweep (grant expiry, unused apps, recertification, callback retries) runs
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

SWEEP_INTERVAL = timedelta(minutes=10)
_QUEUED_KEY = "consentry:lifecycle-sweep-queued"


@task()
def deliver_callback_task(delivery_id: int) -> str:
    """Try one callback delivery now (retries are picked up by the lifecycle sweep)."""
    return callbacks.deliver(delivery_id)


@task()
def lifecycle_sweep_task() -> dict[str, Any]:
    """Every lifecycle job once, then queue the next sweep."""
    report = asdict(run_lifecycle())
    ensure_lifecycle_scheduled(timezone.now() + SWEEP_INTERVAL)
    return report


def ensure_lifecycle_scheduled(run_after: Any = None) -> None:
    """Queue a lifecycle sweep unless one is already waiting. The database backend is
    asked directly; on RQ a short-lived key in the shared (Redis) cache stands for the
    waiting sweep, so restarted workers do not start a second chain of sweeps (an extra
    sweep would be harmless anyway: every job is idempotent)."""
    from consentry.web.worker import uses_database_backend

    if uses_database_backend():
        from django_tasks_db.models import DBTaskResult

        waiting = DBTaskResult.objects.filter(
            task_path=lifecycle_sweep_task.module_path, status="READY"
        ).exists()
        if waiting:
            return
    elif not cache.add(_QUEUED_KEY, 1, SWEEP_INTERVAL.total_seconds() * 0.9):
        # A little shorter than the interval, so the running sweep can queue the next one;
        # a second chain (a worker restarted meanwhile) loses this race and ends.
        return
    sweep = lifecycle_sweep_task.using(run_after=run_after) if run_after else lifecycle_sweep_task
    sweep.enqueue()
