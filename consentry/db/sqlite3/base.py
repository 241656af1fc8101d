"""Django's SQLite backend with write transactions queued inside the process.

SQLite has one writer at a time. Every transaction here starts with BEGIN IMMEDIATE
(settings), so a second thread that wants to write waits in SQLite's busy handler, which
*sleeps* -- 1, 2, 5, 10 ... up to 100 ms between tries -- and so turns a 1 ms wait into
tens of milliseconds: under 8 concurrent clients the Graph API's p99 reached a second
(issue "Performance"). Here the threads of one process queue on a lock instead and each
starts the moment the previous one commits. Other processes (a worker, a second server)
still meet SQLite's own lock and busy timeout; the in-process wait is bounded by the same
timeout, after which the transaction goes ahead and SQLite decides as before.

Its cursors also remember the SQL they converted. Django writes `%s` placeholders and
its SQLite cursor turns them into `?` with a regular expression on every execute: on the
read path's long hand-written statements that took 40-60 us each, more than running
them (issue "Performance"). The conversion is a pure function of the statement, so it is
kept (a bounded cache of the most recent statements).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from django.db.backends.sqlite3 import base

WAIT_SECONDS = 10.0  # the busy_timeout of settings.DATABASES

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _write_lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


@functools.lru_cache(maxsize=1024)
def _qmark(query: str) -> str:
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class CursorWrapper(base.SQLiteCursorWrapper):
    """Django's SQLite cursor, converting each distinct statement once."""

    def convert_query(self, query: str, *, param_names: list[str] | None = None) -> str:
        if param_names is None:
            return _qmark(query)
        return super().convert_query(query, param_names=param_names)  # type: ignore[misc]


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_write_lock = False

    def create_cursor(self, name: str | None = None) -> Any:
        return self.connection.cursor(factory=CursorWrapper)

    def _start_transaction_under_autocommit(self) -> None:
        lock = _write_lock(str(self.settings_dict["NAME"]))
        held = lock.acquire(timeout=WAIT_SECONDS)
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]
        except BaseException:
            if held:
                lock.release()
            raise
        self._holds_write_lock = held

    def _release_write_lock(self) -> None:
        if self._holds_write_lock:
            self._holds_write_lock = False
            _write_lock(str(self.settings_dict["NAME"])).release()

    def _commit(self) -> Any:
        try:
            return super()._commit()  # type: ignore[misc]
        finally:
            self._release_write_lock()

    def _rollback(self) -> Any:
        try:
            return super()._rollback()  # type: ignore[misc]
        finally:
            self._release_write_lock()

    def _close(self) -> Any:
        try:
            return super()._close()  # type: ignore[misc]
        finally:
            self._release_write_lock()
