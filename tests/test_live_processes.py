"""Several server processes, one truth: real `consentry serve` processes on one database
(PostgreSQL in the PostgreSQL run) sharing one Redis. A revocation through one process
is refused by the other on the very next request; rate limits are counted across
processes; kill -9 of every server process while clients read loses no ledger entry of
any response a client received."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from tests.graph_fixtures import wait_for_fresh_minute
from tests.live_servers import (
    Server,
    base_env,
    redis_env,
    run_python,
    scratch_database,
    setup_world,
)


def me(server: Server, token: str) -> httpx.Response:
    return httpx.get(
        f"{server.base}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_two_processes_share_revocations_and_rate_limits(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as url:
        prefix = f"t{uuid.uuid4().hex}:"
        env = base_env(tmp_path, url, CONSENTRY_RATE_TOKEN_PER_MINUTE="6", **redis_env(prefix))
        world = setup_world(env, 2)
        token, limited = world["tokens"][0]["raw"], world["tokens"][1]["raw"]
        a, b = Server(env).start(), Server(env).start()
        try:
            assert httpx.get(f"{a.base}/readyz", timeout=10).json()["redis"] == "ok"
            # A revocation through b is refused by a on the very next request.
            assert me(a, token).status_code == 200
            assert me(b, token).status_code == 200
            revoked = httpx.post(
                f"{b.base}/oauth/revoke/",
                data={"token": token, "client_id": world["client_id"]},
                timeout=30,
            )
            assert revoked.status_code == 200
            after = me(a, token)
            assert after.status_code == 401
            assert after.json()["error"]["code"] == "invalid_token"
            assert me(b, token).status_code == 401
            # Six requests a minute for a token, counted across both processes.
            wait_for_fresh_minute(8.0)
            statuses = [me(server, limited).status_code for server in (a, b, a, b, a, b)]
            assert statuses == [200] * 6
            refused = me(a, limited)
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert me(b, limited).status_code == 429
        finally:
            a.stop()
            b.stop()


COUNT_BY_TOKEN = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
import django
django.setup()
from django.db.models import Count
from consentry.ledger.models import CallRecord
rows = CallRecord.objects.values("token_id").annotate(n=Count("index"))
print(json.dumps({str(r["token_id"]): r["n"] for r in rows}))
"""


def test_kill_9_while_clients_read_loses_no_ledger_entry(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as url:
        # Limits out of the way: three clients on a fast read path pass the app's 1,200
        # requests a minute within seconds.
        env = base_env(
            tmp_path,
            url,
            CONSENTRY_RATE_TOKEN_PER_MINUTE="1000000",
            CONSENTRY_RATE_APP_PER_MINUTE="1000000",
        )
        world = setup_world(env, 3)
        workers = 1 if url.startswith("sqlite") else 2
        server = Server(env, workers=workers).start()
        received: Counter[int] = Counter()
        stop = threading.Event()
        errors: list[str] = []

        def client(token: dict) -> None:
            with httpx.Client(timeout=10) as http:
                while not stop.is_set():
                    try:
                        response = http.get(
                            f"{server.base}/v1/me",
                            headers={"Authorization": f"Bearer {token['raw']}"},
                        )
                    except httpx.TransportError:
                        time.sleep(0.05)  # the server is down: try again
                        continue
                    if response.status_code == 200:
                        received[token["id"]] += 1
                    else:
                        errors.append(f"{response.status_code} {response.text[:200]}")

        threads = [threading.Thread(target=client, args=(t,)) for t in world["tokens"]]
        for thread in threads:
            thread.start()
        try:
            for _ in range(2):
                time.sleep(1.5)
                server.kill9()
                server.start()
            time.sleep(1.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            server.stop()
        assert not errors, errors[:3]
        assert sum(received.values()) > 0
        verify = run_python(
            env,
            "import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'consentry.settings');"
            "from consentry.cli import main; sys.argv = ['consentry', 'ledger', 'verify']; main()",
        )
        assert verify.startswith("OK"), verify
        entries = json.loads(run_python(env, COUNT_BY_TOKEN).strip().splitlines()[-1])
        for token_id, count in received.items():
            # Every response a client received was recorded; a few more entries may exist
            # for responses that were committed while their connection was being killed.
            assert entries.get(str(token_id), 0) >= count, (token_id, count, entries)
