"""`consentry worker`: run background tasks (exports, notices, callbacks, sweeps)."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from consentry.web.worker import run_ready_tasks, uses_database_backend


class Command(BaseCommand):
    help = (
        "Run background tasks: polls the database task queue by default, or runs an RQ "
        "worker when CONSENTRY_REDIS_URL is set. Run as many as you like; each task runs once. "
        "`consentry serve` starts one itself unless --no-worker."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch", action="store_true", help="run the tasks that are ready, then exit"
        )
        parser.add_argument(
            "--interval", type=float, default=0.5, help="seconds between polls (database queue)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if uses_database_backend():
            if opts["batch"]:
                ran = run_ready_tasks()
                self.stdout.write(f"Ran {ran} task(s).")
                return
            call_command(
                "db_worker",
                queue_name="*",
                interval=opts["interval"],
                reload=False,
                verbosity=opts["verbosity"],
            )
        else:
            # RQ must build jobs with django-tasks-rq's Job class, which runs Task objects.
            rq_args = ["default", "--with-scheduler", "--job-class", "django_tasks_rq.backend.Job"]
            if opts["batch"]:
                rq_args.append("--burst")
            call_command("rqworker", *rq_args)
