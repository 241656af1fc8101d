"""Cursors for the hot path's hand-written statements: planned once per connection.

Django's PostgreSQL backend binds parameters on the client (psycopg's ClientCursor), so
PostgreSQL parses and plans every statement again: the bearer token lookup (four tables
and an EXISTS) took 0.9 ms to plan and 0.25 ms to run (issue "Performance"). A cursor
from `prepared_cursor()` binds on the server instead, and psycopg prepares a statement
the fifth time one connection runs it (prepare_threshold); the pool keeps connections,
so their prepared statements, across requests. It is Django's cursor wrapper all the
same (execute wrappers, error translation); where queries are logged it is Django's
usual cursor, so the log shows the exact statements. On SQLite, whose module
keeps its own statement cache, it is Django's usual cursor.

Only for statements written for it: `%s` placeholders for values, never inside
literals, no `IN %s` of a tuple (use `= ANY(%s)` with a list).
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections


def prepared_cursor() -> Any:
    conn = connections[DEFAULT_DB_ALIAS]  # one lookup: each `connection.x` is another
    if conn.vendor != "postgresql" or conn.queries_logged:
        # Where queries are logged (DEBUG, CaptureQueriesContext) Django's own cursor,
        # whose log shows each statement with its values.
        return conn.cursor()
    import psycopg

    conn.close_if_health_check_failed()
    conn.ensure_connection()
    with conn.wrap_database_errors:
        return conn._prepare_cursor(psycopg.Cursor(conn.connection))  # type: ignore[attr-defined]
