"""Django's PostgreSQL backend, with the pool's health check of consentry/db/pool.py, a
connection that the machine lane's requests keep between them (`keep_between_requests`),
and timestamps read by psycopg's C parser.

Django reads every `timestamptz` through a loader of its own (to label the value with
the connection's time zone), a subclass of psycopg's pure-Python loader: a regular
expression and a dozen Python steps a value, 4-6 us, and the bearer token's facts hold
five timestamps (issue "Performance"). psycopg's C loader cannot be subclassed, so
`_tz_loader` wraps it: the C loader parses, and the value gets Django's label exactly as
Django's loader gives it (`replace(tzinfo=...)`, the session's TimeZone being that zone).
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg import abc
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg_pool import ConnectionPool

from consentry.db import pool as checks

TIMESTAMPTZ_OID = 1184

# The wrappers (one per thread) keeping a connection between requests in this process.
_kept: weakref.WeakSet[Any] = weakref.WeakSet()
_kept_lock = threading.Lock()


@functools.cache
def _tz_loader(tz: Any) -> type[Loader]:
    """A timestamptz loader labelling values with `tz`, as Django's SpecificTzLoader does
    (Django compares its `timezone` to decide whether a cursor needs one of its own)."""
    found = psycopg.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)  # C with psycopg[binary]
    assert found is not None
    fast: type[abc.Loader] = found

    class TzLoader(Loader):
        timezone = tz

        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._parse = fast(oid, context).load

        def load(self, data: Any) -> Any:
            return self._parse(data).replace(tzinfo=self.timezone)

    return TzLoader


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        context = params.get("context")
        # psycopg 3: the adapters every connection starts from -- a template Django caches
        # and shares between aliases with the same time zone, so each gets this loader
        # (for that same zone: the same class, from _tz_loader's cache).
        if context is not None:
            context.register_loader("timestamptz", _tz_loader(self.timezone))
        return params

    # Until this time.monotonic() the connection stays with its thread at a request's end
    # (0: not kept); the request that kept it ended checks.RECENT_SECONDS before.
    kept_until = 0.0

    def keep_between_requests(self) -> None:
        """Called by the machine lane after a request it answered without error: the thread
        keeps its connection for the next request instead of handing it back to the pool
        and borrowing it again (a tenth of an introspection's CPU). Kept only as long as the
        pool would lend it unchecked (checks.RECENT_SECONDS): one that sat longer goes back
        at the next request's start or end marked with its last use, so the pool checks it
        before lending it again. At most the pool's size less one are kept in a process, so
        an idle thread's connection never leaves the others waiting for the pool."""
        if self.connection is None or self.errors_occurred or self.in_atomic_block:
            return
        with _kept_lock:
            if self not in _kept and len(_kept) >= self._keep_limit():
                return
            _kept.add(self)
        self.kept_until = time.monotonic() + checks.RECENT_SECONDS

    def _keep_limit(self) -> int:
        options: Any = self.settings_dict.get("OPTIONS", {}).get("pool")
        if not isinstance(options, dict):
            return 3  # psycopg_pool's default size is 4
        size: Any = options.get("max_size", options.get("min_size", 4))
        return int(size) - 1

    def close_if_unusable_or_obsolete(self) -> None:
        if (
            self.connection is not None
            and time.monotonic() < self.kept_until
            and not self.errors_occurred
            and not self.in_atomic_block
            and self.get_autocommit() == self.settings_dict["AUTOCOMMIT"]
        ):
            self.health_check_done = True
            return
        super().close_if_unusable_or_obsolete()
        self._unkeep()

    def _unkeep(self) -> None:
        if self.kept_until:
            self.kept_until = 0.0
            with _kept_lock:
                _kept.discard(self)

    @property
    def pool(self) -> Any:
        pool = super().pool  # type: ignore[misc]
        # Django passes ConnectionPool.check_connection (CONN_HEALTH_CHECKS) and cannot be
        # given another: the pool's own attribute is replaced, once.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = checks.check
        return pool

    def _close(self) -> None:
        # Handed back to the pool in use and without error: recently checked, as of the
        # request that last used it (a kept one may have sat since).
        if self.pool is not None and self.connection is not None and not self.errors_occurred:
            used_at = self.kept_until - checks.RECENT_SECONDS if self.kept_until else None
            checks.returned(self.connection, used_at)
        super()._close()  # type: ignore[misc]
        self._unkeep()
