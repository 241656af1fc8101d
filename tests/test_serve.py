"""`consentry serve` runs a production server (gunicorn) that serves pages, static files
and the health check."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_home_static_and_healthz(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env |= {
        "CONSENTRY_VAR_DIR": str(tmp_path),
        "CONSENTRY_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "consentry", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "server did not start within 60 s"
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "database": "sqlite"}
        home = httpx.get(base + "/", timeout=5)
        assert home.status_code == 200
        assert "Consentry" in home.text
        assert home.headers["x-frame-options"] == "DENY"
        css = httpx.get(base + "/static/consentry.css", timeout=5)
        assert css.status_code == 200
        assert "text/css" in css.headers["content-type"]
        assert (tmp_path / "secret_key").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()


def test_serve_runs_background_tasks_in_its_own_worker(tmp_path):
    """A notice queued by any process is emailed by the worker `consentry serve` started."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env |= {
        "CONSENTRY_VAR_DIR": str(tmp_path),
        "CONSENTRY_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "consentry", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def shell(code: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "consentry", "shell", "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "server did not start within 60 s"
                time.sleep(0.2)
        shell(
            "from consentry.people.models import Person\n"
            "from consentry.notices.actions import NoticeDraft, do_send_notices\n"
            "p = Person.objects.create_user(email='w@example.test', password='x', name='W')\n"
            "do_send_notices([NoticeDraft(p.id, 'hello', 'Hello from the worker', 'Body')])\n"
        )
        check = (
            "from consentry.notices.models import Notice\n"
            "print(Notice.objects.filter(emailed_at__isnull=False).count())\n"
        )
        deadline = time.monotonic() + 60
        while shell(check).split()[-1:] != ["1"]:
            assert time.monotonic() < deadline, "the worker did not send the notice in 60 s"
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        output = proc.stdout.read() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
    assert "Subject: Hello from the worker" in output


def test_worker_runs_tasks_from_redis_when_configured(tmp_path):
    """With CONSENTRY_REDIS_URL the Tasks API uses RQ: a task queued by one process is
    run by `consentry worker` (here in burst mode) from Redis."""
    redis_url = os.environ.get("CONSENTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env |= {
        "CONSENTRY_VAR_DIR": str(tmp_path),
        "CONSENTRY_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "CONSENTRY_REDIS_URL": redis_url,
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "consentry", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    run("migrate", "-v0")
    run(
        "shell",
        "-c",
        "from django.conf import settings\n"
        "assert settings.TASKS['default']['BACKEND'] == 'django_tasks_rq.RQBackend'\n"
        "from consentry.people.models import Person\n"
        "from consentry.notices.actions import NoticeDraft, do_send_notices\n"
        "p = Person.objects.create_user(email='r@example.test', password='x', name='R')\n"
        "do_send_notices([NoticeDraft(p.id, 'hello', 'Hello through Redis', 'Body')])\n",
    )
    output = run("worker", "--batch")
    assert "Subject: Hello through Redis" in output
    sent = run(
        "shell",
        "-c",
        "from consentry.notices.models import Notice\n"
        "print(Notice.objects.filter(emailed_at__isnull=False).count())\n",
    )
    assert sent.split()[-1] == "1"
