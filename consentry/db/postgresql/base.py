"""Django's PostgreSQL backend, with the pool's health check of consentry/db/pool.py."""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

from consentry.db import pool as checks


class DatabaseWrapper(base.DatabaseWrapper):
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
