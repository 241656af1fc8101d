"""Rate and volume limits of the Graph API (docs/rules.md rule 4), per app and per token.

Fixed windows counted in Django's cache (Redis when CONSENTRY_REDIS_URL is set, so all
workers share the counters; in-process otherwise) with atomic increments: `cache.add`
creates the window's counter, `cache.incr` bumps it, and the first request past the
limit is refused with the seconds left in the window (the `Retry-After` value).

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
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

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
    for key, attr in Limits.OVERRIDE_KEYS.items():
        raw = (app_limits or {}).get(key)
        if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
            values[attr] = raw
    return Limits(**values)


def _redis() -> Any:
    """The Redis client behind Django's cache when it is Redis (CONSENTRY_REDIS_URL), else
    None. Counters then take one pipelined round trip instead of Django's three per
    counter (add; exists + incr)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    return backend._cache.get_client(write=True)  # type: ignore[attr-defined]


def _count_many(counts: Sequence[tuple[str, int, int]], read: str | None = None) -> list[Any]:
    """Atomically add each `amount` to its counter `key`, which lives for its `window`
    (plus 5 s); returns the new values, after the value of the key `read` (or None) when
    one is named. Counters are plain integers in Django's cache, readable with cache.get."""
    client = _redis()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        if read is not None:
            pipe.get(cache.make_key(read))
        for key, window, amount in counts:
            name = cache.make_key(key)
            pipe.incrby(name, amount)
            pipe.expire(name, window + 5, nx=True)
        results = pipe.execute()
        start = 1 if read is not None else 0
        values = [int(v) for v in results[start::2]]
        if read is None:
            return values
        raw = results[0]
        return [None if raw is None else int(raw), *values]
    values = [_count(key, window, amount) for key, window, amount in counts]
    return values if read is None else [cache.get(read), *values]


def _count(key: str, window: int, amount: int = 1) -> int:
    """Atomically add `amount` to the in-process counter `key` that lives for one window."""
    try:
        return int(cache.incr(key, amount))
    except ValueError:  # no counter yet (or it expired): start the window's counter
        cache.add(key, 0, timeout=window + 5)
        return int(cache.incr(key, amount))


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
    until_ms, token_count, app_count = _count_many(
        [
            (f"graph:rate:token:{token_id}:{number}", MINUTE, 1),
            (f"graph:rate:app:{app_id}:{number}", MINUTE, 1),
        ],
        read=_throttle_key(app_id),
    )
    throttled = _throttle_left(until_ms, now)
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
        cache.decr(key, count)
        raise RateLimited(left, "daily subject volume")


def release_subjects(app_id: int, count: int, now: float | None = None) -> None:
    """Give back a reservation whose response did not leave (e.g. the ledger failed)."""
    if count <= 0:
        return
    now = time.time() if now is None else now
    key = f"graph:volume:app:{app_id}:{_window(now, DAY)[0]}"
    with contextlib.suppress(ValueError):  # the day rolled over: nothing to give back
        cache.decr(key, count)


# --- Harvest detection hook (rule 4, "not throttled by harvest detection") ---------------


def _throttle_key(app_id: int) -> str:
    return f"graph:throttle:app:{app_id}"


def _throttle_left(until_ms: Any, now: float) -> int | None:
    """Whole seconds left of a throttle that ends at `until_ms` (epoch milliseconds)."""
    if until_ms is None or until_ms <= now * 1000:
        return None
    return math.ceil(until_ms / 1000 - now)


def throttle_app(app_id: int, seconds: int, now: float | None = None) -> None:
    """Refuse the app's Graph API calls for `seconds` (called by harvest detection)."""
    now = time.time() if now is None else now
    # An integer, which Django's Redis cache stores as is: check_request_rate reads it in
    # the same round trip as its counters.
    until_ms = math.ceil((now + seconds) * 1000)
    cache.set(_throttle_key(app_id), until_ms, timeout=seconds + 1)


def lift_throttle(app_id: int) -> None:
    cache.delete(_throttle_key(app_id))


def harvest_throttle(app_id: int, now: float | None = None) -> int | None:
    """Seconds the app remains throttled by harvest detection, or None."""
    return _throttle_left(cache.get(_throttle_key(app_id)), time.time() if now is None else now)
