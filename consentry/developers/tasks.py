"""Background work of the developer platform on Django's Tasks API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django_tasks import task

from consentry.developers import callbacks
from consentry.developers.lifecycle import run_lifecycle


@task()
def deliver_callback_task(delivery_id: int) -> str:
    """Try one callback delivery now (retries are picked up by the lifecycle sweep)."""
    return callbacks.deliver(delivery_id)


@task()
def lifecycle_sweep_task() -> dict[str, Any]:
    """Every lifecycle job once: grant expiry, unused apps, recertification, callbacks."""
    return asdict(run_lifecycle())
