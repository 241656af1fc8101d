"""The replay's simulated clock: 120 days pass in a minute or two.

While `simulated_time(start)` is active, everything that asks Django for the time gets the
simulated time instead: `django.utils.timezone.now()` (grant expiry, token lifetimes,
ledger timestamps, sessions), the model fields whose default is `timezone.now`, and the
Graph API's rate-limit windows (consentry.graph.limits counts simulated minutes). The
replay moves it forward with `clock.advance_to(moment)`; it never goes back.

Only the replay process uses this (consentry.replay.runner); the server never does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.utils import timezone


class SimulatedClock:
    def __init__(self, start: datetime) -> None:
        self.start = start
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def time(self) -> float:
        """Seconds since the epoch, for code that reads time.time()."""
        return self._now.timestamp()

    def advance_to(self, moment: datetime) -> None:
        with self._lock:
            if moment > self._now:
                self._now = moment

    def tick(self, seconds: float = 1.0) -> None:
        """Let a little time pass (between the steps of one person's visit)."""
        with self._lock:
            self._now += timedelta(seconds=seconds)

    def day(self, moment: datetime | None = None) -> float:
        """Days since the start of the replay."""
        return ((moment or self._now) - self.start).total_seconds() / 86_400


class _LimitsTime:
    """Stands in for the `time` module inside consentry.graph.limits."""

    def __init__(self, clock: SimulatedClock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock.time()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextmanager
def simulated_time(start: datetime) -> Iterator[SimulatedClock]:
    """Run the body on a simulated clock starting at `start` (module docstring)."""
    from consentry.graph import limits

    clock = SimulatedClock(start)
    real_now = timezone.now
    # Fields whose default is timezone.now hold the function itself (captured when the
    # model class was built), so patching the module attribute does not reach them.
    fields = [
        f
        for model in apps.get_models()
        for f in model._meta.concrete_fields
        if getattr(f, "default", None) is real_now
    ]
    real_limits_time = limits.time
    timezone.now = clock.now
    for f in fields:
        f.default = clock.now
        f.__dict__.pop("_get_default", None)  # a cached_property built from .default
    limits.time = _LimitsTime(clock)  # type: ignore[assignment]
    try:
        yield clock
    finally:
        timezone.now = real_now
        for f in fields:
            f.default = real_now
            f.__dict__.pop("_get_default", None)
        limits.time = real_limits_time
