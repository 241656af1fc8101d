"""Rule 4's per-minute limits as one counting step per request (consentry/graph/limits.py),
in process and on the real Redis (one script call): what an outsider's attack on the
first version of that step found.

The Redis cases use the server at CONSENTRY_TEST_REDIS_URL (default
redis://127.0.0.1:6379/15) under a key prefix of their own.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.test import Client

from consentry.graph import limits
from tests.graph_fixtures import (
    direct_app,
    direct_consent,
    direct_token,
    get,
    wait_for_fresh_minute,
)

pytestmark = pytest.mark.django_db

REDIS_URL = os.environ.get("CONSENTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SCOPES = ["openid", "profile"]


@pytest.fixture(params=["in process", "redis"])
def backend(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    if request.param == "in process":
        yield request.param
        return
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__})")
    prefix = f"consentry-test-{secrets.token_hex(6)}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    yield request.param
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


def tokens_of_one_app(make_person: Any, n: int, **app_limits: int) -> tuple[Any, list[str]]:
    app = direct_app(approved=[])
    app.limits = app_limits
    app.save(update_fields=["limits"])
    out = [direct_token(direct_consent(make_person().pk, app, SCOPES), SCOPES) for _ in range(n)]
    wait_for_fresh_minute()
    return app, out


def codes(raw: str, n: int) -> list[int]:
    return [get(Client(), "/v1/me", raw).status_code for _ in range(n)]


def test_a_token_past_its_own_limit_does_not_use_up_the_app_s(
    backend: str, make_person: Any
) -> None:
    """Calls refused by one token's limit are not counted against the app's: one user (or
    one stolen token) hammering past its limit cannot lock every other user out."""
    _, (a, b) = tokens_of_one_app(
        make_person, 2, token_requests_per_minute=5, requests_per_minute=8
    )
    assert codes(a, 10) == [200] * 5 + [429] * 5
    assert codes(b, 5) == [200] * 3 + [429] * 2


def test_a_throttled_app_s_calls_are_not_counted(backend: str, make_person: Any) -> None:
    app, (a,) = tokens_of_one_app(make_person, 1, token_requests_per_minute=3)
    limits.throttle_app(app.pk, 600)
    assert codes(a, 5) == [429] * 5
    limits.lift_throttle(app.pk)
    assert codes(a, 4) == [200] * 3 + [429]


def test_a_throttle_written_by_an_earlier_version_is_honoured(
    backend: str, make_person: Any
) -> None:
    """Earlier versions stored the throttle's end as a float of epoch seconds (pickled by
    Django's cache): during a rolling upgrade it must still be a 429, never a 500."""
    app, (a,) = tokens_of_one_app(make_person, 1)
    cache.set(f"graph:throttle:app:{app.pk}", time.time() + 120, timeout=121)
    response = get(Client(), "/v1/me", a)
    assert response.status_code == 429
    assert 100 <= int(response["Retry-After"]) <= 120
    assert limits.harvest_throttle(app.pk) is not None


def test_an_expired_throttle_counts_the_call(backend: str, make_person: Any) -> None:
    """A throttle whose end has passed (its key may live a second longer) neither refuses
    nor lets a call go uncounted."""
    app, (a,) = tokens_of_one_app(make_person, 1, token_requests_per_minute=2)
    cache.set(f"graph:throttle:app:{app.pk}", int(time.time() * 1000) - 1, timeout=30)
    assert codes(a, 3) == [200, 200, 429]


def test_the_stored_throttle_is_a_plain_integer(backend: str) -> None:
    """Epoch milliseconds, which Django's Redis cache stores as digits (not pickled), so
    that the counting script can compare it."""
    limits.throttle_app(987654, 30)
    value = cache.get("graph:throttle:app:987654")
    assert isinstance(value, int)
    assert time.time() * 1000 < value <= (time.time() + 31) * 1000
    if backend == "redis":
        raw = redis.Redis.from_url(REDIS_URL).get(cache.make_key("graph:throttle:app:987654"))
        assert raw is not None
        assert raw.isdigit()
    limits.lift_throttle(987654)


@pytest.mark.parametrize("path", ["/oauth/token/", "/oauth/introspect/", "/oauth/revoke/"])
def test_a_percent_encoded_nul_in_basic_credentials_is_a_400(path: str) -> None:
    """RFC 6749 2.3.1: the client id and secret are form-urlencoded inside Basic; a %00
    used to reach PostgreSQL as a NUL (a 500)."""
    for credentials in ("a%00b:x", "client:se%00cret", "a%0Ab:x"):
        header = "Basic " + base64.b64encode(credentials.encode()).decode()
        response = Client().post(path, {"token": "x"}, HTTP_AUTHORIZATION=header)
        assert response.status_code == 400, credentials
        assert response.json()["error"] == "invalid_request"


def test_the_in_process_cache_counts_as_locmem_does_without_the_memcached_key_check() -> None:
    """Without Redis the counters live in consentry.ops.cache.LocalCache: LocMemCache
    (pickled values, expiry, incr of a missing key refused) minus the per-character
    memcached key check, which cost most of each of a read's four cache calls."""
    import warnings

    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    from consentry.ops.cache import LocalCache

    local = LocalCache("test-local-cache", {})
    assert isinstance(local, LocMemCache)
    if not os.environ.get("CONSENTRY_REDIS_URL"):
        assert isinstance(caches["default"], LocalCache)
    key = "graph:rate:token: 12 \x01" + "x" * 300  # a space, a control byte, 300+ chars
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # LocMemCache would warn (CacheKeyWarning) here
        with pytest.raises(ValueError, match="not found"):
            local.incr(key)
        assert local.add(key, 0, timeout=60)
        assert not local.add(key, 5, timeout=60)
        assert local.incr(key, 3) == 3
        assert local.get(key) == 3
        local.set("window", {"a": [1]}, timeout=0.05)
        value = local.get("window")
        value["a"].append(2)  # a copy, as LocMemCache gives
        assert local.get("window") == {"a": [1]}
        time.sleep(0.1)
        assert local.get("window") is None
    local.clear()


def test_in_process_windows_count_exactly_past_300_tokens_and_forget_only_expired() -> None:
    """LocalCache.count: plain counters that live for their window. LocMemCache held 300
    entries before culling a third, so a busy minute's live counters restarted at zero."""
    from consentry.ops.cache import LocalCache, Windows

    local = LocalCache("test-windows", {})
    now = 1_000_000.0
    for token in range(1000):
        assert local.count(f"t{token}", 1, 65, now) == 1
    for token in range(1000):
        assert local.count(f"t{token}", 2, 65, now + 1) == 3  # none was dropped
    assert local.counted("t7", now + 64) == 3
    assert local.counted("t7", now + 65) == 0  # its window has ended
    assert local.count("t7", 1, 65, now + 65) == 1  # and a new one starts
    assert local.count("t8", -2, 0, now + 2) == 1  # a reservation given back
    local.clear()
    assert local.counted("t9", now) == 0

    original = Windows.SWEEP_AT
    Windows.SWEEP_AT = 10
    swept = LocalCache("test-windows-sweep", {})
    swept.clear()  # starts at the (patched) SWEEP_AT
    try:
        for key in range(10):
            swept.count(f"old{key}", 1, 5, now)
        swept.count("live", 1, 100, now)  # a sweep: none has expired, all are kept
        assert len(swept._windows.counts) == 11
        assert swept._windows.sweep_at == 20  # so the next sweep waits for twice as many
        for key in range(9):
            swept.count(f"busy{key}", 1, 100, now + 10)  # no sweep: below 20
        assert len(swept._windows.counts) == 20
        swept.count("new", 1, 100, now + 10)  # the next: the old ones have expired
        assert set(swept._windows.counts) == {"live", "new"} | {f"busy{k}" for k in range(9)}
        assert swept.counted("live", now + 10) == 1
    finally:
        Windows.SWEEP_AT = original
        swept.clear()


def test_rate_windows_are_counted_per_token_in_process() -> None:
    """The per-token window, counted 1,000 tokens wide in one minute: every token's count
    is exact, and the token past its limit is refused."""
    if os.environ.get("CONSENTRY_REDIS_URL"):
        pytest.skip("the in-process windows are used without Redis")
    limit = limits.Limits(app_per_minute=100_000, token_per_minute=2, subjects_per_day=10)
    now = time.time()
    number, _ = limits._window(now, limits.MINUTE)
    for token in range(1000):
        limits.check_request_rate(424242, 10_000 + token, limit, now)
    for token in range(1000):
        limits.check_request_rate(424242, 10_000 + token, limit, now)
    assert limits.counted(f"graph:rate:token:10999:{number}") == 2
    assert limits.counted(f"graph:rate:app:424242:{number}") == 2000
    with pytest.raises(limits.RateLimited):
        limits.check_request_rate(424242, 10_000, limit, now)
    limits.reserve_subjects(424242, 6, limit, now)
    with pytest.raises(limits.RateLimited):
        limits.reserve_subjects(424242, 6, limit, now)  # given back whole
    limits.reserve_subjects(424242, 4, limit, now)
    day, _ = limits._window(now, limits.DAY)
    assert limits.counted(f"graph:volume:app:424242:{day}") == 10
    limits.release_subjects(424242, 4, now)
    assert limits.counted(f"graph:volume:app:424242:{day}") == 6
