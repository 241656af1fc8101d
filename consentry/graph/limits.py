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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.core.cache import cache

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


def _count(key: str, window: int, amount: int = 1) -> int:
    """Atomically add `amount` to the counter `key` that lives for one window."""
    cache.add(key, 0, timeout=window + 5)
    try:
        return int(cache.incr(key, amount))
    except ValueError:  # the counter expired between add and incr
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
    throttled = harvest_throttle(app_id, now)
    if throttled is not None:
        raise RateLimited(throttled, "throttled")
    number, left = _window(now, MINUTE)
    if _count(f"graph:rate:token:{token_id}:{number}", MINUTE) > limits.token_per_minute:
        raise RateLimited(left, "token rate limit")
    if _count(f"graph:rate:app:{app_id}:{number}", MINUTE) > limits.app_per_minute:
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
    if _count(key, DAY, count) > limits.subjects_per_day:
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


def throttle_app(app_id: int, seconds: int, now: float | None = None) -> None:
    """Refuse the app's Graph API calls for `seconds` (called by harvest detection)."""
    now = time.time() if now is None else now
    cache.set(f"graph:throttle:app:{app_id}", now + seconds, timeout=seconds + 1)


def lift_throttle(app_id: int) -> None:
    cache.delete(f"graph:throttle:app:{app_id}")


def harvest_throttle(app_id: int, now: float | None = None) -> int | None:
    """Seconds the app remains throttled by harvest detection, or None."""
    until = cache.get(f"graph:throttle:app:{app_id}")
    now = time.time() if now is None else now
    if until is None or until <= now:
        return None
    return math.ceil(until - now)
