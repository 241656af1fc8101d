"""Throttle of failed client authentication at the token, revocation and introspection
endpoints (RFC 6749 10.10, RFC 9700 4.x): per (client id, source address), never per
client id alone.

Client ids are public (every authorization URL carries one), so a lockout keyed by the
client id alone lets anyone switch an app off. Here failures are counted per (client id,
source address) in Django's cache -- Redis when CONSENTRY_REDIS_URL is set, so every
server process shares the counters -- and after FREE_FAILURES failures each further one
starts a delay that doubles, up to CLIENT_AUTH_MAX_DELAY_SECONDS. During a delay that
pair is answered 429 with `Retry-After` before any secret is checked (so guessing, and
the cost of hashing guesses, slows down); a correct secret is never answered 401, and
the same client authenticating from any other address is not affected at all. Counters
are forgotten CLIENT_AUTH_FAILURE_WINDOW_SECONDS after the last failure, and at once
after a success from that address.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from oauthlib.oauth2.rfc6749.errors import OAuth2Error


class ClientAuthThrottled(OAuth2Error):
    """Raised instead of checking the client's credentials while its (client id,
    address) pair is delayed; oauthlib's endpoints render it as a 429 JSON error."""

    error = "slow_down"
    status_code = 429

    def __init__(self, retry_after: int, **kwargs: object) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(
            description=(
                "Too many failed client authentications from this address; "
                f"retry after {self.retry_after} seconds."
            ),
            **kwargs,
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def delay_after(failures: int) -> int:
    """Seconds a (client, address) pair waits after its `failures`-th failure in a row:
    none for the first FREE_FAILURES, then 1, 2, 4, ... seconds up to the maximum."""
    free = settings.CLIENT_AUTH_FREE_FAILURES
    if failures <= free:
        return 0
    return int(min(2 ** min(failures - free - 1, 30), settings.CLIENT_AUTH_MAX_DELAY_SECONDS))


def _keys(client_id: str, address: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{client_id}\0{address}".encode("utf-8", "replace")).hexdigest()
    return f"oauth:client-auth:failures:{digest}", f"oauth:client-auth:until:{digest}"


def retry_after(client_id: str, address: str, now: float | None = None) -> int | None:
    """Whole seconds this pair must still wait, or None when it may try now."""
    return check(client_id, address, now)[0]


def check(client_id: str, address: str, now: float | None = None) -> tuple[int | None, bool]:
    """retry_after(), and whether the pair has failures on record (which a success then
    clears): one cache read, so a client that authenticates correctly costs no write."""
    failures_key, until_key = _keys(client_id, address)
    found = cache.get_many([failures_key, until_key])
    until = found.get(until_key)
    now = time.time() if now is None else now
    wait = None if until is None or until <= now else max(1, math.ceil(until - now))
    return wait, bool(found)


def record_failure(client_id: str, address: str, now: float | None = None) -> int:
    """Count one failed authentication of the pair; returns the delay it starts."""
    failures_key, until_key = _keys(client_id, address)
    window = settings.CLIENT_AUTH_FAILURE_WINDOW_SECONDS
    cache.add(failures_key, 0, timeout=window)
    try:
        failures = int(cache.incr(failures_key))
    except ValueError:  # expired between add and incr
        cache.set(failures_key, 1, timeout=window)
        failures = 1
    cache.touch(failures_key, timeout=window)
    delay = delay_after(failures)
    if delay:
        now = time.time() if now is None else now
        cache.set(until_key, now + delay, timeout=delay + 1)
    return delay


def record_success(client_id: str, address: str) -> None:
    cache.delete_many(list(_keys(client_id, address)))
