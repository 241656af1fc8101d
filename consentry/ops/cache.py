"""The in-process cache (no CONSENTRY_REDIS_URL): Django's LocMemCache, without the
memcached key check, and with window counters of its own.

Every Graph API read counts itself (consentry.graph.limits: the app's and the token's
per-minute windows, the daily volume) and checks the harvest throttle: four cache calls
a request. Two costs of LocMemCache's went with them (issue "Performance"):

- Django checks each key for what memcached would refuse (`validate_key`: a warning for a
  key over 250 characters or with a space or control character), one Python step per
  character: 3.3 us of a 4.5 us `incr`. This cache lives in the process and takes any
  string as a key, so the check guards nothing here.
- A counter kept as a pickled value is unpickled and pickled again on each `incr`, and
  LocMemCache holds 300 entries before culling a third of them: past 300 tokens busy in
  one minute, live counters were dropped and counted again from zero. `count` keeps
  window counters as plain integers in a dict of their own, under one lock, dropping
  only expired ones; `clear()` empties them with the rest.

Everything else -- pickled values, expiry, culling, the per-name store and lock -- is
LocMemCache's own.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.core.cache.backends.locmem import LocMemCache


class Windows:
    """Counters of fixed windows: key -> [count, expiry (epoch seconds)]."""

    SWEEP_AT = 50_000  # past this many counters, a new one first drops the expired

    def __init__(self) -> None:
        self.counts: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        # The next sweep's size: twice what a sweep left, so that many live counters
        # (a busy day's volume windows) are not rebuilt on every new one.
        self.sweep_at = self.SWEEP_AT


# One store per cache name, shared by the cache objects of every thread (as LocMemCache's).
_windows: dict[str, Windows] = {}
_windows_guard = threading.Lock()


class LocalCache(LocMemCache):
    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(name, params)
        with _windows_guard:
            self._windows = _windows.setdefault(name, Windows())

    def make_and_validate_key(self, key: str, version: int | None = None) -> str:
        return self.make_key(key, version=version)

    def count(self, key: str, amount: int, lifetime: float, now: float) -> int:
        """Add `amount` to the window counter `key` and return its new value; a counter
        absent or expired starts at `amount` and lives `lifetime` seconds from `now`."""
        windows = self._windows
        with windows.lock:
            entry = windows.counts.get(key)
            if entry is None or entry[1] <= now:
                if entry is None and len(windows.counts) >= windows.sweep_at:
                    windows.counts = {k: v for k, v in windows.counts.items() if v[1] > now}
                    windows.sweep_at = max(Windows.SWEEP_AT, 2 * len(windows.counts))
                windows.counts[key] = [amount, now + lifetime]
                return amount
            entry[0] += amount
            return int(entry[0])

    def counted(self, key: str, now: float | None = None) -> int:
        """A window counter's value; 0 when absent or expired."""
        now = time.time() if now is None else now
        entry = self._windows.counts.get(key)
        return 0 if entry is None or entry[1] <= now else int(entry[0])

    def clear(self) -> None:
        super().clear()
        with self._windows.lock:
            self._windows.counts.clear()
            self._windows.sweep_at = Windows.SWEEP_AT
