"""`consentry serve`: run the site under a production WSGI server: granian (Rust HTTP
server) by default, gunicorn's threaded worker with `--server gunicorn`.

Granian was picked by the numbers (issue "Performance", measured on one machine with
wrk, 8 connections, alternating rounds): /healthz 2.5x, /v1/me 1.4x and /v1/me/friends
1.25x gunicorn gthread's requests per second, with the same processes and threads."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

PER_PROCESS_WARNING = (
    "warning: {workers} worker processes without CONSENTRY_REDIS_URL: rate limits and the "
    "client-authentication throttle are counted per process, so each limit is effectively "
    "multiplied by the number of processes, and harvest detection sees each process's "
    "share of an app's calls until the figures are merged. Set CONSENTRY_REDIS_URL to "
    "share them."
)


def _share_metrics_between_workers() -> None:
    """Several worker processes share their Prometheus samples through files
    (consentry/ops/metrics.py). prometheus-client picks its storage when it is first
    imported, which the system checks do (through the URL map) before handle() runs, so
    this happens when this module is loaded."""
    if "prometheus_client" in sys.modules or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    metrics_dir = settings.VAR_DIR / "prometheus" / str(os.getpid())
    metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)


_share_metrics_between_workers()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


class Command(BaseCommand):
    help = (
        "Serve Consentry with granian (or --server gunicorn; static files through "
        "WhiteNoise). Applies pending migrations first unless --no-migrate. With SQLite one "
        "worker process with threads is used; with PostgreSQL, --workers processes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--workers", type=int, default=0, help="default: 1 on SQLite, 2 x cores on PostgreSQL"
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=0,
            help="Python threads per worker process (default: 1 on SQLite, whose calls run "
            "in the process, so a second thread only waits for the GIL -- measured, /v1/me "
            "1,350 -> 620-840 req/s and /healthz p99 3 -> 100 ms; 2 on PostgreSQL, where one "
            "thread's network round trips leave room for another -- /v1/me 375 -> 556 req/s)",
        )
        parser.add_argument("--server", choices=["granian", "gunicorn"], default="granian")
        parser.add_argument("--no-migrate", action="store_true")
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="do not start a background task worker (run `consentry worker` elsewhere)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if not opts["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        workers = opts["workers"] or (1 if sqlite else 2 * (os.cpu_count() or 1))
        opts["threads"] = opts["threads"] or (1 if sqlite else 2)
        if workers > 1 and not settings.CONFIG.redis_url:
            self.stderr.write(PER_PROCESS_WARNING.format(workers=workers))
        _close_connections()  # the web workers are forked from this process
        if not opts["no_worker"]:
            start_worker()
        self.stdout.write(f"Consentry serving at http://{opts['host']}:{opts['port']}/")
        if opts["server"] == "granian":
            self._granian(opts, workers)
        else:
            self._gunicorn(opts, workers)

    def _granian(self, opts: dict[str, Any], workers: int) -> None:
        from granian import Granian
        from granian.constants import Interfaces

        Granian(
            "consentry.wsgi:application",
            address=opts["host"],
            port=opts["port"],
            interface=Interfaces.WSGI,
            workers=workers,
            blocking_threads=opts["threads"],
            # No access log of the server's own: consentry.ops.middleware logs every
            # request as JSON (URL pattern, status, time, request id; never a path, query
            # string or address).
            log_access=False,
        ).serve()

    def _gunicorn(self, opts: dict[str, Any], workers: int) -> None:
        from gunicorn.app.base import BaseApplication

        from consentry.wsgi import application

        options = {
            "bind": f"{opts['host']}:{opts['port']}",
            "workers": workers,
            "threads": opts["threads"],
            "worker_class": "gthread",
            # No gunicorn access log: consentry.ops.middleware logs every request as JSON
            # (URL pattern, status, time, request id; never a path, query or address).
            "accesslog": None,
            "child_exit": _child_exit,
            "timeout": 120,
            # Twice gunicorn's default: every request the Graph API documents as valid
            # (percent-encoded `fields` and `after` at their maximum length) fits.
            "limit_request_line": 8190,
        }

        class Server(BaseApplication):
            def load_config(self) -> None:
                for key, value in options.items():
                    self.cfg.set(key, value)

            def load(self) -> Any:
                return application

        Server().run()


def _close_connections() -> None:
    """Close this process's database connections and its connection pool (PostgreSQL):
    a forked worker must open its own, never share a socket with its parent."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close()
        if getattr(conn, "pool", None) is not None:  # PostgreSQL with its pool
            conn.close_pool()  # type: ignore[attr-defined]


def start_worker() -> subprocess.Popen[bytes]:
    """Run `consentry worker` as a child process for as long as the server runs.

    A separate process rather than a thread in the server's master process: the master
    forks web workers, and a forked copy of a thread's open database connection is not safe."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "consentry", "worker"],
        env=os.environ.copy(),
        preexec_fn=_die_with_parent,
    )

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
