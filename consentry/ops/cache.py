"""The in-process cache (no CONSENTRY_REDIS_URL): Django's LocMemCache, without the
memcached key check.

Every Graph API read counts itself in the cache (consentry.graph.limits: the app's and
the token's windows, the throttle, the daily volume), four cache calls a request. Django
checks each key for what memcached would refuse (`validate_key`: a warning for a key over
250 characters or with a space or control character), one Python step per character:
3.3 us of a 4.5 us `incr` (issue "Performance"). This cache lives in the process and
takes any string as a key, so the check guards nothing here. Our keys are ids and
numbers; a deployment that later moves to memcached would see them pass there too.

Everything else -- pickled values, expiry, culling, the per-name store and lock -- is
LocMemCache's own.
"""

from __future__ import annotations

from django.core.cache.backends.locmem import LocMemCache


class LocalCache(LocMemCache):
    def make_and_validate_key(self, key: str, version: int | None = None) -> str:
        return self.make_key(key, version=version)
