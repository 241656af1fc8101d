"""Harvest detection's figures shared through Redis (consentry.detection.shared): two
detectors, standing for two worker processes, see each other's calls on the very next
call, so a threshold split across them fires on the call that crosses it, once; a Redis
that is flushed or down degrades detection to each process's own figures and never
costs a Graph API call its answer.

Needs Redis at CONSENTRY_TEST_REDIS_URL (default redis://127.0.0.1:6379/15); keys carry a
prefix unique to the test, deleted afterwards (nothing else in that database is
touched). The live two-server test is in tests/test_detection_redis_live.py."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from django.test import Client

from consentry.detection import shared as shared_module
from consentry.detection.actions import do_clear_firing
from consentry.detection.engine import Detector, detector
from consentry.detection.models import Firing
from consentry.detection.shared import RETRY_SECONDS, SharedFigures
from consentry.oauth.pairwise import app_scoped_id
from consentry.people.models import Person
from tests.detection_world import NO_LIMITS, call
from tests.graph_fixtures import direct_app, direct_consent, direct_token
from tests.live_servers import REDIS_URL, free_port

ACTOR = 10**9  # an acting person id: no canary, no row needed


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own in the shared Redis, removed afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {type(exc).__name__}")
    name = f"t{uuid.uuid4().hex}:"
    yield name
    for key in client.scan_iter(match=name + "*", count=1000):
        client.delete(key)
    client.close()


def flush(prefix: str) -> None:
    """Lose every key of this test, as FLUSHDB or a Redis restart would."""
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()


def pair(prefix: str) -> tuple[Detector, Detector]:
    """Two detectors with their own state and connection: two worker processes."""
    return (
        Detector(shared=SharedFigures.from_url(REDIS_URL, prefix)),
        Detector(shared=SharedFigures.from_url(REDIS_URL, prefix)),
    )


def firings(app_id: int, rule: str) -> int:
    return Firing.objects.filter(app_id=app_id, rule=rule).count()


def probe(d: Detector, app_id: int) -> list[str]:
    """One /v1/people/{id} lookup answered 404; the rules it fired."""
    return [f.rule for f in d.observe(app_id, ACTOR, (), not_found=True)]


def test_two_detectors_see_each_others_calls_and_a_split_threshold_fires_on_time(
    db: None, prefix: str
) -> None:
    app = direct_app(limits=NO_LIMITS)
    a, b = pair(prefix)
    fired: dict[int, list[str]] = {}
    for n in range(1, 101):
        fired[n] = probe(a if n % 2 else b, app.pk)
        # Each sees every 404 so far, its own and the other's.
        assert a.figures(app.pk).not_found == n
        assert b.figures(app.pk).not_found == n
    # enumeration (an alert at 50 lookups) fired on the 50th, in one of the two;
    # enumeration_throttle (100 404s) on the 100th, as in one process.
    assert {n: rules for n, rules in fired.items() if rules} == {
        50: ["enumeration"],
        100: ["enumeration_throttle"],
    }
    for _ in range(10):  # the other process crosses the same thresholds: no second firing
        assert probe(a, app.pk) == []
    assert firings(app.pk, "enumeration") == firings(app.pk, "enumeration_throttle") == 1


def test_a_cleared_firing_may_be_recorded_again_by_any_process(db: None, prefix: str) -> None:
    app = direct_app(limits=NO_LIMITS)
    a, b = pair(prefix)
    rules = [r for n in range(1, 51) for r in probe(a if n % 2 else b, app.pk)]
    assert rules == ["enumeration"]
    firing = Firing.objects.get(app_id=app.pk, rule="enumeration")
    do_clear_firing(firing, staff_id=None)  # the staff console's action
    a.cleared(app.pk, "enumeration")  # what do_clear_firing does in a's own process
    b.forget(app.pk)  # b reloads the app's state (its open firings) later
    assert probe(b, app.pk) == ["enumeration"]  # the condition still holds: it fires again
    assert probe(a, app.pk) == []
    assert firings(app.pk, "enumeration") == 2


def test_without_redis_a_split_threshold_fires_late(db: None) -> None:
    """The control: the same calls on two detectors that share nothing but the database."""
    app = direct_app(limits=NO_LIMITS)
    a, b = Detector(), Detector()
    rules = [r for n in range(1, 101) for r in probe(a if n % 2 else b, app.pk)]
    assert "enumeration_throttle" not in rules  # each saw 50 of the 100
    assert a.figures(app.pk).not_found == 50


def test_distinct_subjects_split_across_two_detectors_are_counted_once(
    db: None, prefix: str
) -> None:
    """Subjects reached is a HyperLogLog estimate (~0.81% standard error): a rule on it
    fires within one call of the true crossing, and a subject seen by both counts once."""
    app = direct_app(limits=NO_LIMITS)
    a, b = pair(prefix)
    fired_at = None
    for n in range(1, 16):
        batch = [(n * 1000 + i, 1) for i in range(50)]  # 50 new people a call
        d = a if n % 2 else b
        rules = [f.rule for f in d.observe(app.pk, ACTOR, batch)]
        # the same people again, through the other process: nobody new
        (b if d is a else a).observe(app.pk, ACTOR, batch)
        reached = a.figures(app.pk).subjects_reached
        assert abs(reached - 50 * n) <= max(3, 0.03 * 50 * n), (n, reached)
        if "amplification" in rules:
            assert fired_at is None
            fired_at = n
    # amplification: 500 people reached by one installer; crossed on the 10th call
    assert fired_at in (10, 11)
    assert firings(app.pk, "amplification") == 1
    assert a.figures(app.pk).installers == 1


def test_a_flushed_redis_degrades_to_each_process_and_heals_at_the_merge(
    db: None, prefix: str
) -> None:
    app = direct_app(limits=NO_LIMITS)
    a, b = pair(prefix)
    for n in range(1, 61):
        probe(a if n % 2 else b, app.pk)
    assert a.figures(app.pk).not_found == 60
    flush(prefix)
    # Never below what this process counted itself; a recreated the shared state and
    # seeded it with its own 30.
    probe(a, app.pk)
    assert a.figures(app.pk).not_found >= 31
    probe(b, app.pk)
    assert b.figures(app.pk).not_found >= 31
    # Each process's database merge lifts the shared counters to the merged totals.
    a.sync(app.pk)
    b.sync(app.pk)
    assert a.figures(app.pk).not_found == b.figures(app.pk).not_found == 62
    rules: dict[int, list[str]] = {}
    for n in range(63, 101):
        rules[n] = probe(a if n % 2 else b, app.pk)
    assert [n for n, r in rules.items() if "enumeration_throttle" in r] == [100]


class Cable:
    """A TCP forwarder to the real Redis that a test can cut (every connection dropped,
    new ones closed at once) and mend: a network outage, the server untouched."""

    def __init__(self) -> None:
        target = urlsplit(REDIS_URL)
        self.target = (target.hostname or "127.0.0.1", target.port or 6379)
        self.db = target.path.lstrip("/") or "0"
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                near.close()
                continue
            far = socket.create_connection(self.target)
            self.open += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.close()

    def cut(self) -> None:
        self.up = False
        for s in self.open:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.open = []

    def mend(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_after_an_outage_the_merge_brings_back_what_redis_missed(
    db: None, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One process loses Redis for a while, then gets it back: its calls of that time
    reach the others at the next database merges."""
    monkeypatch.setattr(shared_module, "RETRY_SECONDS", 0.0)  # retry on every call
    app = direct_app(limits=NO_LIMITS)
    cable = Cable()
    a = Detector(shared=SharedFigures.from_url(cable.url, prefix))
    b = Detector(shared=SharedFigures.from_url(REDIS_URL, prefix))
    try:
        for n in range(1, 21):
            probe(a if n % 2 else b, app.pk)
        assert b.figures(app.pk).not_found == 20  # a's went through the cable
        cable.cut()
        for _ in range(10):
            probe(a, app.pk)
        a.observe(app.pk, ACTOR, [(5000 + i, 1) for i in range(100)])  # 100 people
        assert a.figures(app.pk).not_found == 20  # its own 10 and 10 from before
        assert a.shared is not None
        assert a.shared.outages >= 1
        cable.mend()
        probe(b, app.pk)
        assert b.figures(app.pk).not_found == 21  # b does not know a's 10 yet
        assert b.figures(app.pk).subjects_reached == 0
        a.sync(app.pk)  # a's merge re-adds its bitmaps ...
        assert 97 <= b.figures(app.pk).subjects_reached <= 103
        b.sync(app.pk)  # ... and once every process has merged, the counters are whole
        assert a.figures(app.pk).not_found == b.figures(app.pk).not_found == 31
    finally:
        cable.close()


def test_redis_down_costs_no_answer_and_detection_carries_on_per_process(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens at the Redis address: every Graph API call is answered, the
    figures are this process's, its rules still fire, and a warning is logged (once per
    retry interval) without the address's password."""
    app = direct_app(limits={**NO_LIMITS, "subjects_per_day": 10**6})
    me = Person.objects.create(email="down@example.test", name="Down", password="!")
    token = direct_token(direct_consent(me.pk, app, ["openid", "profile"]), ["openid", "profile"])
    d = detector()
    was = d.shared
    d.shared = SharedFigures.from_url(f"redis://:hunter2secret@127.0.0.1:{free_port()}/15")
    client = Client()
    try:
        with caplog.at_level(logging.WARNING, logger="consentry.detection"):
            started = time.monotonic()
            assert call(client, token, "/v1/me", fields="name") == 200
            statuses = [
                call(client, token, f"/v1/people/{app_scoped_id(app.pk, 10**8 + i)}")
                for i in range(101)
            ]
            elapsed = time.monotonic() - started
        assert statuses[:100] == [404] * 100
        assert statuses[100] == 429  # enumeration_throttle fired on this process's own count
        assert d.figures(app.pk).not_found == 100
        assert firings(app.pk, "enumeration_throttle") == 1
        # The breaker: one warning, and one more attempt, per RETRY_SECONDS at most.
        warnings = [r for r in caplog.records if r.name == "consentry.detection"]
        assert 1 <= len(warnings) <= 1 + elapsed / RETRY_SECONDS, [r.getMessage() for r in warnings]
        assert "hunter2secret" not in caplog.text
    finally:
        d.shared = was
