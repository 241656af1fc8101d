"""Health checks for psycopg's connection pool that cost nothing under load.

With CONN_HEALTH_CHECKS Django has the pool run `ConnectionPool.check_connection` (an
empty query: one round trip) every time a request borrows a connection. On PostgreSQL
that was a third of a token introspection's round trips (issue "Performance"). Here the
check runs only for a connection that has been idle in the pool for more than
`RECENT_SECONDS`: one handed back a moment ago by a request that used it without error
is alive, and a dead one (a restarted server) still fails its check before any request
gets it once it has sat idle. A connection that broke within that moment fails the one
request that borrows it, as any connection breaking mid-request does, and Django then
closes it (its errors_occurred check at the end of the request).
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from psycopg_pool import ConnectionPool

RECENT_SECONDS = 2.0

_returned: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def check(connection: Any) -> None:
    """The pool's `check`: raises when the connection is unusable."""
    returned = _returned.pop(connection, None)
    if returned is not None and time.monotonic() - returned < RECENT_SECONDS:
        return
    ConnectionPool.check_connection(connection)


def returned(connection: Any, used_at: float | None = None) -> None:
    """Called as a request hands `connection` back to the pool, healthy (not the pool's
    `reset` hook, which would move every return into the pool's worker thread); `used_at`
    (time.monotonic()) when it was last used, if earlier than now."""
    _returned[connection] = time.monotonic() if used_at is None else used_at
