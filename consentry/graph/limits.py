"""Rate and volume limits of the Graph API (docs/rules.md rule 4), per app and per token.

Fixed windows counted in Django's cache with atomic increments -- Redis when
CONSENTRY_REDIS_URL is set (one script call a request, so all workers share the
counters), else the process's own (consentry.ops.cache.LocalCache.count, plain integers
under one lock) -- and the first request past the limit is refused with the seconds left
in the window (the `Retry-After` value). `counted` reads a counter either way.

Defaults come from settings (CONSENTRY_RATE_APP_PER_MINUTE,
CONSENTRY_RATE_TOKEN_PER_MINUTE, CONSENTRY_RATE_APP_SUBJECTS_PER_DAY);
`Application.limits` overrides them per app with the keys in `Limits.OVERRIDE_KEYS`.

Harvest detection (a later capability) throttles an app through `throttle_app()`; every
request checks `harvest_throttle()` first. That pair is the whole hook: detection decides
when and for how long, this module enforces it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache

from consentry.ops.cache import LocalCache

MINUTE = 60
DAY = 86_400


class RateLimited(Exception):
    """Refused under rule 4; `retry_after` is whole seconds until it may succeed."""

    def __init__(self, retry_after: int, reason: str) -> None:
        super().__init__(reason)
        self.retry_after = max(1, retry_after)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    app_per_minute: int
    token_per_minute: int
    subjects_per_day: int

    OVERRIDE_KEYS: ClassVar[Mapping[str, str]] = {
        "requests_per_minute": "app_per_minute",
        "token_requests_per_minute": "token_per_minute",
        "subjects_per_day": "subjects_per_day",
    }


def limits_for(app_limits: Mapping[str, Any] | None) -> Limits:
    """The limits in force for an app: settings, overridden by `Application.limits`."""
    values = {
        "app_per_minute": settings.GRAPH_RATE_APP_PER_MINUTE,
        "token_per_minute": settings.GRAPH_RATE_TOKEN_PER_MINUTE,
        "subjects_per_day": settings.GRAPH_SUBJECTS_PER_APP_PER_DAY,
    }
    if app_limits:
        for key, attr in Limits.OVERRIDE_KEYS.items():
            raw = app_limits.get(key)
            if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
                values[attr] = raw
    return Limits(**values)


def _redis(backend: Any = None) -> Any:
    """The Redis client behind Django's cache (`backend`, else the default one) when it is
    Redis (CONSENTRY_REDIS_URL), else None. A request's limits then take one round trip
    (a script) instead of Django's three per counter (add; exists + incr)."""
    if backend is None:
        backend = caches[DEFAULT_CACHE_ALIAS]
    if not isinstance(backend, RedisCache):
        return None
    return backend._cache.get_client(write=True)  # type: ignore[attr-defined]


# KEYS: throttle, token counter, app counter. ARGV: token limit, window seconds, now (ms).
# Returns {throttle value or false, token count, app count or -1}: the app's counter is
# not counted while the app is throttled or the token is over its own limit, so one token
# past its limit cannot use up the whole app's (the in-process path below does the same).
_RATE_SCRIPT = """
local throttle = redis.call('GET', KEYS[1])
if throttle then
  local ends = tonumber(throttle)
  if ends == nil or ends > tonumber(ARGV[3]) then return {throttle, 0, -1} end
end
local token = redis.call('INCR', KEYS[2])
if token == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
if token > tonumber(ARGV[1]) then return {false, token, -1} end
local app = redis.call('INCR', KEYS[3])
if app == 1 then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
return {false, token, app}
"""
_scripts: dict[int, Any] = {}


def _count_request(
    throttle_key: str, token_key: str, app_key: str, token_limit: int, window: int, now: float
) -> tuple[Any, int, int]:
    """(the throttle's value or None, the token's count, the app's count or -1 when it
    was not counted): see _RATE_SCRIPT."""
    backend = caches[DEFAULT_CACHE_ALIAS]  # one lookup for the whole request's counting
    client = _redis(backend)
    if client is not None:
        script = _scripts.get(id(client))
        if script is None:
            script = _scripts[id(client)] = client.register_script(_RATE_SCRIPT)
        raw, token, app = script(
            keys=[cache.make_key(throttle_key), cache.make_key(token_key), cache.make_key(app_key)],
            args=[token_limit, window + 5, int(now * 1000)],
        )
        return (None if raw is None else _throttle_value(raw, throttle_key)), int(token), int(app)
    throttle = backend.get(throttle_key)
    if _throttle_left(throttle, now) is not None:
        return throttle, 0, -1
    token = _count(token_key, window, 1, now, backend)
    if token > token_limit:
        return None, token, -1
    return None, token, _count(app_key, window, 1, now, backend)


def _throttle_value(raw: bytes, key: str) -> Any:
    """A throttle as Redis holds it: an integer as is (this version), anything else
    pickled by Django's cache (a float of seconds, written by an earlier version)."""
    try:
        return int(raw)
    except ValueError:
        return cache.get(key)


def _count_many(counts: Sequence[tuple[str, int, int]]) -> list[int]:
    """Atomically add each `amount` to its counter `key`, which lives for its `window`
    (plus 5 s); returns the new values (`counted` reads one)."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    client = _redis(backend)
    if client is not None:
        pipe = client.pipeline(transaction=False)
        for key, window, amount in counts:
            name = cache.make_key(key)
            pipe.incrby(name, amount)
            pipe.expire(name, window + 5, nx=True)
        return [int(v) for v in pipe.execute()[0::2]]
    now = time.time()
    return [_count(key, window, amount, now, backend) for key, window, amount in counts]


def _count(key: str, window: int, amount: int, now: float, backend: Any) -> int:
    """Atomically add `amount` to the in-process counter `key` that lives for one window
    (plus 5 s): LocalCache's own counters, or `incr` on any other in-process cache."""
    if isinstance(backend, LocalCache):
        return backend.count(key, amount, window + 5, now)
    try:
        return int(backend.incr(key, amount))
    except ValueError:  # no counter yet (or it expired): start the window's counter
        backend.add(key, 0, timeout=window + 5)
        return int(backend.incr(key, amount))


def counted(key: str) -> int:
    """The current value of a window counter (0 when there is none)."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    client = _redis(backend)
    if client is not None:
        return int(client.get(backend.make_key(key)) or 0)
    if isinstance(backend, LocalCache):
        return backend.counted(key)
    return int(backend.get(key) or 0)


def _give_back(key: str, amount: int, now: float) -> None:
    """Take `amount` off a counter that exists (a reservation whose response did not
    leave); nothing when its window has ended."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, LocalCache):
        if backend.counted(key, now):
            backend.count(key, -amount, 0, now)
        return
    with contextlib.suppress(ValueError):
        backend.decr(key, amount)


def _window(now: float, length: int) -> tuple[int, int]:
    """The fixed window containing `now` and the whole seconds until it ends."""
    number = int(now // length)
    return number, math.ceil((number + 1) * length - now)


def check_request_rate(
    app_id: int, token_id: int, limits: Limits, now: float | None = None
) -> None:
    """Count one request against the app's and the token's per-minute windows; raise
    RateLimited when either is over its limit, or while harvest detection throttles."""
    now = time.time() if now is None else now
    number, left = _window(now, MINUTE)
    until, token_count, app_count = _count_request(
        _throttle_key(app_id),
        f"graph:rate:token:{token_id}:{number}",
        f"graph:rate:app:{app_id}:{number}",
        limits.token_per_minute,
        MINUTE,
        now,
    )
    throttled = _throttle_left(until, now)
    if throttled is not None:
        raise RateLimited(throttled, "throttled")
    if token_count > limits.token_per_minute:
        raise RateLimited(left, "token rate limit")
    if app_count > limits.app_per_minute:
        raise RateLimited(left, "app rate limit")


def reserve_subjects(app_id: int, count: int, limits: Limits, now: float | None = None) -> None:
    """Count `count` released subjects against the app's daily volume (UTC days); raise
    RateLimited, giving the reservation back, when that would pass the limit. A response
    is refused whole rather than cut short: the app may ask for a smaller page."""
    if count <= 0:
        return
    now = time.time() if now is None else now
    number, left = _window(now, DAY)
    key = f"graph:volume:app:{app_id}:{number}"
    if _count_many([(key, DAY, count)])[0] > limits.subjects_per_day:
        _give_back(key, count, now)
        raise RateLimited(left, "daily subject volume")


def release_subjects(app_id: int, count: int, now: float | None = None) -> None:
    """Give back a reservation whose response did not leave (e.g. the ledger failed)."""
    if count <= 0:
        return
    now = time.time() if now is None else now
    _give_back(f"graph:volume:app:{app_id}:{_window(now, DAY)[0]}", count, now)


# --- Harvest detection hook (rule 4, "not throttled by harvest detection") ---------------


def _throttle_key(app_id: int) -> str:
    return f"graph:throttle:app:{app_id}"


def _throttle_left(until: Any, now: float) -> int | None:
    """Whole seconds left of a throttle that ends at `until`: epoch milliseconds (an int,
    as throttle_app stores it) or epoch seconds (a float, as earlier versions did)."""
    if isinstance(until, float):
        until = math.ceil(until * 1000)
    if not isinstance(until, int) or until <= now * 1000:
        return None
    return math.ceil(until / 1000 - now)


def throttle_app(app_id: int, seconds: int, now: float | None = None) -> None:
    """Refuse the app's Graph API calls for `seconds` (called by harvest detection)."""
    now = time.time() if now is None else now
    # An integer, which Django's Redis cache stores as is: check_request_rate reads it in
    # the same round trip as its counters.
    # Rounded down: a throttle of `seconds` never reads as seconds + 1 left (Retry-After).
    until_ms = math.floor((now + seconds) * 1000)
    cache.set(_throttle_key(app_id), until_ms, timeout=seconds + 1)


def lift_throttle(app_id: int) -> None:
    cache.delete(_throttle_key(app_id))


def harvest_throttle(app_id: int, now: float | None = None) -> int | None:
    """Seconds the app remains throttled by harvest detection, or None."""
    return _throttle_left(cache.get(_throttle_key(app_id)), time.time() if now is None else now)
