"""Running background tasks (Django's Tasks API, django-tasks backport).

The database backend needs a worker polling the task table: `consentry worker`, or the one
`consentry serve` starts beside the web workers. With CONSENTRY_REDIS_URL the RQ backend
is used and `consentry worker` runs an RQ worker instead.
"""

from __future__ import annotations

import os
import socket

from django.conf import settings


def uses_database_backend() -> bool:
    return str(settings.TASKS["default"]["BACKEND"]).startswith("django_tasks_db.")


def run_ready_tasks(max_tasks: int | None = None) -> int:
    """Run ready database-backend tasks in this process until none are left (or
    `max_tasks` ran) and return how many ran. Used by tests and `consentry worker --batch`.

    The same claim-then-run steps as django-tasks-db's worker loop, without its
    connection recycling, so that it also runs inside a test's transaction."""
    from django.db import transaction
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    if not uses_database_backend():
        raise RuntimeError("run_ready_tasks() runs the database backend's tasks only")
    worker_id = f"{socket.gethostname()}:{os.getpid()}:inline"[:64]
    worker = Worker(
        queue_names=["*"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=max_tasks,
        worker_id=worker_id,
        excluded_queue_names=[],
    )
    ran = 0
    while max_tasks is None or ran < max_tasks:
        with transaction.atomic():
            result = DBTaskResult.objects.ready().filter(backend_name="default").get_locked()
            if result is None:
                break
            result.claim(worker_id)
        worker.run_task(result)
        ran += 1
    return ran
