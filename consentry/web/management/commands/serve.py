"""`consentry serve`: run the site under gunicorn, the production WSGI server."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Serve Consentry with gunicorn (static files through WhiteNoise). Applies pending "
        "migrations first unless --no-migrate. With SQLite one worker process with threads is "
        "used; with PostgreSQL, --workers processes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--workers", type=int, default=0, help="default: 1 on SQLite, 2 x cores on PostgreSQL"
        )
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--no-migrate", action="store_true")
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="do not start a background task worker (run `consentry worker` elsewhere)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if not opts["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        from gunicorn.app.base import BaseApplication

        from consentry.wsgi import application

        sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        workers = opts["workers"] or (1 if sqlite else 2 * (os.cpu_count() or 1))
        options = {
            "bind": f"{opts['host']}:{opts['port']}",
            "workers": workers,
            "threads": opts["threads"],
            "worker_class": "gthread",
            "accesslog": "-",
            # The access log holds the request line only: query strings can carry codes.
            "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',
            "timeout": 120,
        }

        class Server(BaseApplication):
            def load_config(self) -> None:
                for key, value in options.items():
                    self.cfg.set(key, value)

            def load(self) -> Any:
                return application

        if not opts["no_worker"]:
            start_worker()
        self.stdout.write(f"Consentry serving at http://{opts['host']}:{opts['port']}/")
        Server().run()


def start_worker() -> subprocess.Popen[bytes]:
    """Run `consentry worker` as a child process for as long as the server runs.

    A separate process rather than a thread in gunicorn's master: the master forks web
    workers, and a forked copy of a thread's open database connection is not safe."""
    worker = subprocess.Popen([sys.executable, "-m", "consentry", "worker"], env=os.environ.copy())

    def stop() -> None:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()

    atexit.register(stop)
    return worker


def _die_with_parent() -> None:
    """On Linux, have the kernel stop the worker if the server dies without cleaning up
    (kill -9): no orphaned worker keeps polling."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)
