"""`consentry serve` runs a production server (granian) that serves pages, static files
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
