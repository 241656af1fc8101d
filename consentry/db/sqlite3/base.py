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

And a serving process checkpoints in the background (`checkpoint_in_background`, called
by consentry/wsgi.py). By default the commit that takes the write-ahead log past 1,000
pages copies it back into the database and syncs the file, inside that request: 14% of
a Graph API read's append on average, up to 5 ms for the one request that pays it (issue
"Performance"). Here a thread of the process does it every `CHECKPOINT_SECONDS` on a
connection of its own (PASSIVE: it never waits for, nor blocks, a reader or the writer;
SQLite runs it without the GIL, so beside the requests), and the request connections
checkpoint themselves only past `FALLBACK_PAGES`, should that thread fall behind.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
from typing import Any

from django.db.backends.sqlite3 import base

WAIT_SECONDS = 10.0  # the busy_timeout of settings.DATABASES
CHECKPOINT_SECONDS = 0.5
FALLBACK_PAGES = 20_000  # 80 MB of log (4 KiB pages): only if the checkpointer falls behind

logger = logging.getLogger("consentry.db")

# Whether this process checkpoints in a thread (checkpoint_in_background), and the
# checkpointer threads running, per database file, with the process id that started them
# (a forked child starts its own).
_background = False
_checkpointers: dict[str, tuple[int, threading.Thread]] = {}
_checkpointers_guard = threading.Lock()


def checkpoint_in_background() -> None:
    """From now on this process's SQLite connections leave checkpoints to a thread of the
    process (started with the first connection to each database file)."""
    global _background
    _background = True


def _ensure_checkpointer(path: str) -> None:
    """Start this process's checkpointer for `path` unless it runs (checked at every
    write transaction: a thread that ended -- its file was gone for a moment -- starts
    again with the next write)."""
    pid = os.getpid()
    if _running(path, pid) or not path or path == ":memory:" or path.startswith("file:"):
        return
    with _checkpointers_guard:
        if _running(path, pid):
            return
        thread = threading.Thread(
            target=_checkpoint_loop, args=(path,), name="sqlite-checkpointer", daemon=True
        )
        _checkpointers[path] = (pid, thread)
        thread.start()


def _running(path: str, pid: int) -> bool:
    """Whether this process's checkpointer for `path` is alive."""
    running = _checkpointers.get(path)
    return running is not None and running[0] == pid and running[1].is_alive()


def _checkpoint_loop(path: str) -> None:
    """Every CHECKPOINT_SECONDS, copy what the log holds back into the database (PASSIVE:
    as far as no reader still needs; the next writer then starts the log over). Goes on
    through errors (busy, a file being replaced: the connection is opened again); ends
    when the database file is gone (a scratch or test database removed)."""
    conn: sqlite3.Connection | None = None
    try:
        while True:
            time.sleep(CHECKPOINT_SECONDS)
            if not os.path.exists(path):
                return
            try:
                if conn is None:
                    conn = sqlite3.connect(path, timeout=WAIT_SECONDS, check_same_thread=False)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                logger.warning("sqlite checkpoint failed: %s", type(exc).__name__)
                if conn is not None:
                    conn.close()
                    conn = None
    finally:
        if conn is not None:
            conn.close()


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

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        conn = super().get_new_connection(conn_params)
        if _background:
            conn.execute(f"PRAGMA wal_autocheckpoint = {FALLBACK_PAGES}")
            _ensure_checkpointer(str(self.settings_dict["NAME"]))
        return conn

    def create_cursor(self, name: str | None = None) -> Any:
        return self.connection.cursor(factory=CursorWrapper)

    def _start_transaction_under_autocommit(self) -> None:
        if _background:
            _ensure_checkpointer(str(self.settings_dict["NAME"]))
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
