"""Django's PostgreSQL backend, with the pool's health check of consentry/db/pool.py, and
a connection that the machine lane's requests keep between them (`keep_between_requests`)."""

from __future__ import annotations

import time
from typing import Any

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

from consentry.db import pool as checks


class DatabaseWrapper(base.DatabaseWrapper):
    # Until this time.monotonic() the connection stays with its thread at a request's end.
    kept_until = 0.0

    def keep_between_requests(self) -> None:
        """Called by the machine lane after a request it answered without error: the thread
        keeps its connection for the next request instead of handing it back to the pool
        and borrowing it again (a tenth of an introspection's CPU). Kept only as long as the
        pool would lend it unchecked (checks.RECENT_SECONDS): one that sat longer goes back
        at the next request's start or end, and the pool checks it before lending it."""
        if self.connection is not None and not self.errors_occurred:
            self.kept_until = time.monotonic() + checks.RECENT_SECONDS

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
        self.kept_until = 0.0
        super().close_if_unusable_or_obsolete()

    @property
    def pool(self) -> Any:
        pool = super().pool  # type: ignore[misc]
        # Django passes ConnectionPool.check_connection (CONN_HEALTH_CHECKS) and cannot be
        # given another: the pool's own attribute is replaced, once.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = checks.check
        return pool

    def _close(self) -> None:
        # Handed back to the pool in use and without error: recently checked.
        if self.pool is not None and self.connection is not None and not self.errors_occurred:
            checks.returned(self.connection)
        super()._close()  # type: ignore[misc]
