"""Cursors for the hot path's hand-written statements: planned once per connection.

Django's PostgreSQL backend binds parameters on the client (psycopg's ClientCursor), so
PostgreSQL parses and plans every statement again: the bearer token lookup (four tables
and an EXISTS) took 0.9 ms to plan and 0.25 ms to run (issue "Performance"). A cursor
from `prepared_cursor()` binds on the server instead, and psycopg prepares a statement
the fifth time one connection runs it (prepare_threshold); the pool keeps connections,
so their prepared statements, across requests. It is Django's cursor wrapper all the
same (execute wrappers, error translation); where queries are logged it is Django's
usual cursor, so the log shows the exact statements. On SQLite, whose module
keeps its own statement cache, it is the module's cursor with what Django's wrapper
adds that matters here -- the backend's placeholder conversion, error translation, the
check for a transaction already broken, the thread check -- without the wrapper's
per-call machinery (a partial per execute, a decorated function per fetch): a few
microseconds a statement on the read path's three or four (issue "Performance").
Where queries are logged or execute wrappers are installed, Django's usual cursor.

Only for statements written for it: `%s` placeholders for values, never inside
literals, no `IN %s` of a tuple (use `= ANY(%s)` with a list).
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper
from django.utils.asyncio import async_unsafe


class _SQLiteCursor:
    __slots__ = ("cursor", "db")

    def __init__(self, db: Any) -> None:
        self.db = db
        with db.wrap_database_errors:
            self.cursor = db.create_cursor()

    def execute(self, sql: str, params: Any = None) -> Any:
        self.db.validate_no_broken_transaction()
        with self.db.wrap_database_errors:
            return self.cursor.execute(sql, params)

    def fetchone(self) -> Any:
        with self.db.wrap_database_errors:
            return self.cursor.fetchone()

    def fetchall(self) -> Any:
        with self.db.wrap_database_errors:
            return self.cursor.fetchall()

    def fetchmany(self, size: int = 1) -> Any:
        with self.db.wrap_database_errors:
            return self.cursor.fetchmany(size)

    def __iter__(self) -> Any:
        with self.db.wrap_database_errors:
            yield from self.cursor

    def __getattr__(self, name: str) -> Any:
        # Anything else (description, lastrowid, ...) as Django's wrapper gives it.
        return getattr(CursorWrapper(self.cursor, self.db), name)

    @property
    def rowcount(self) -> int:
        return int(self.cursor.rowcount)

    def __enter__(self) -> _SQLiteCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(self.db.Database.Error):
            self.cursor.close()


@async_unsafe
def prepared_cursor() -> Any:
    conn = connections[DEFAULT_DB_ALIAS]  # one lookup: each `connection.x` is another
    if conn.vendor == "sqlite" and not conn.queries_logged and not conn.execute_wrappers:
        conn.close_if_health_check_failed()
        conn.ensure_connection()
        conn.validate_thread_sharing()
        return _SQLiteCursor(conn)
    if conn.vendor != "postgresql" or conn.queries_logged:
        # Where queries are logged (DEBUG, CaptureQueriesContext) Django's own cursor,
        # whose log shows each statement with its values.
        return conn.cursor()
    import psycopg

    conn.close_if_health_check_failed()
    conn.ensure_connection()
    with conn.wrap_database_errors:
        return conn._prepare_cursor(psycopg.Cursor(conn.connection))  # type: ignore[attr-defined]
