"""The database layer under the hot path (issue "Performance"): prepared statements and
the pool's health check on PostgreSQL, SQLite's statement conversion."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from django.db import connection

from consentry.db import pool
from consentry.db.prepared import prepared_cursor

pytestmark = pytest.mark.django_db


def test_a_hot_statement_is_prepared_on_postgresql_and_answers_the_same(make_person):
    person = make_person(name="Prepared Person")
    sql = "SELECT name FROM people_person WHERE id = %s"
    for _ in range(3):
        with prepared_cursor() as cursor:
            cursor.execute(sql, [person.pk])
            assert cursor.fetchone() == ("Prepared Person",)
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert "SELECT name FROM people_person WHERE id = $1" in statements


def test_the_pool_checks_a_connection_only_after_it_sat_idle(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the pool is PostgreSQL's")
    connection.ensure_connection()
    assert connection.pool._check is pool.check  # installed in place of Django's
    dead = psycopg.connect(_dsn())
    dead.close()
    pool.returned(dead)
    pool.check(dead)  # handed back a moment ago: lent without a round trip
    with pytest.raises(psycopg.Error):
        pool.check(dead)  # the mark is used once: the next borrow checks it
    pool.returned(dead)
    monkeypatch.setattr(pool, "RECENT_SECONDS", 0.0)
    with pytest.raises(psycopg.Error):
        pool.check(dead)


def _dsn() -> str:
    s = connection.settings_dict
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    return f"host={host} port={port} user={s['USER']} dbname={s['NAME']}"


def test_sqlite_cursors_convert_each_statement_once_and_bind_every_execute(make_person):
    if connection.vendor != "sqlite":
        pytest.skip("the cursor is SQLite's")
    from consentry.db.sqlite3.base import _qmark

    first, second = make_person(name="Ann 100%"), make_person(name="Bob")
    sql = "SELECT name, '%%' FROM people_person WHERE id = %s"
    _qmark.cache_clear()
    for person, name in ((first, "Ann 100%"), (second, "Bob"), (first, "Ann 100%")):
        with connection.cursor() as cursor:
            cursor.execute(sql, [person.pk])
            assert cursor.fetchone() == (name, "%")
    assert _qmark.cache_info().hits >= 2  # converted once, bound three times
    with connection.cursor() as cursor:  # named ("pyformat") parameters: Django's way
        cursor.execute("SELECT name FROM people_person WHERE id = %(id)s", {"id": second.pk})
        assert cursor.fetchone() == ("Bob",)


def test_the_lean_sqlite_cursor_translates_errors_and_refuses_a_broken_transaction(make_person):
    """prepared_cursor() on SQLite skips Django's cursor wrapper, not what it guarantees:
    errors come as Django's, a transaction that already failed is refused, the log of
    queries (where kept) sees every statement."""
    if connection.vendor != "sqlite":
        pytest.skip("the lean cursor is SQLite's")
    import sqlite3

    from django.db import DatabaseError, IntegrityError, transaction
    from django.db.transaction import TransactionManagementError
    from django.test.utils import CaptureQueriesContext

    from consentry.db.prepared import _SQLiteCursor

    person = make_person(name="Lean")
    with prepared_cursor() as cursor:
        assert isinstance(cursor, _SQLiteCursor)  # not Django's wrapper
        cursor.execute("SELECT name FROM people_person WHERE id = %s", [person.pk])
        assert cursor.fetchall() == [("Lean",)]
        cursor.execute("SELECT name, id FROM people_person WHERE id = %s", [person.pk])
        assert [column[0] for column in cursor.description] == ["name", "id"]
        assert cursor.fetchmany(2) == [("Lean", person.pk)]
        assert cursor.fetchone() is None
    with pytest.raises(DatabaseError) as caught, prepared_cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table WHERE id = %s", [1])
    assert not isinstance(caught.value, sqlite3.Error)  # Django's class, not the module's
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(), prepared_cursor() as cursor:
            cursor.execute("INSERT INTO people_person (id) VALUES (%s)", [person.pk])  # a savepoint
        connection.needs_rollback = True  # as after an error caught inside atomic()
        with pytest.raises(TransactionManagementError), prepared_cursor() as cursor:
            cursor.execute("SELECT 1")
        connection.needs_rollback = False
    with CaptureQueriesContext(connection) as queries, prepared_cursor() as cursor:
        cursor.execute("SELECT name FROM people_person WHERE id = %s", [person.pk])
    assert [q["sql"] for q in queries.captured_queries] == [
        f"SELECT name FROM people_person WHERE id = {person.pk}"
    ]


def test_a_serving_process_checkpoints_sqlite_in_a_thread_of_its_own(tmp_path, monkeypatch):
    """consentry/wsgi.py turns on background checkpoints: request connections checkpoint
    only far past SQLite's default, and a thread copies the log back into the database."""
    import sqlite3
    import threading
    import time

    from consentry.db.sqlite3 import base as sqlite_base

    path = str(tmp_path / "ckpt.sqlite3")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # only the thread checkpoints
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("INSERT INTO t VALUES (1)")

    def in_database_file() -> int:
        """Rows the main database file holds, the log left aside."""
        main = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            return int(main.execute("SELECT count(*) FROM t").fetchone()[0])
        except sqlite3.OperationalError:  # the table is still only in the log
            return -1
        finally:
            main.close()

    assert in_database_file() == -1
    monkeypatch.setattr(sqlite_base, "CHECKPOINT_SECONDS", 0.05)
    sqlite_base._ensure_checkpointer(path)
    sqlite_base._ensure_checkpointer(path)  # one thread per file and process
    ours = sqlite_base._checkpointers[path][1]
    sqlite_base._ensure_checkpointer(path)
    assert sqlite_base._checkpointers[path][1] is ours  # not a second one
    assert ours.is_alive()
    assert ours in threading.enumerate()
    deadline = time.monotonic() + 10
    while in_database_file() != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert in_database_file() == 1
    writer.close()
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    ours.join(timeout=10)  # the file is gone: the thread ends
    assert not ours.is_alive()

    if connection.vendor != "sqlite":
        return
    started: list[str] = []
    monkeypatch.setattr(sqlite_base, "_ensure_checkpointer", started.append)
    monkeypatch.setattr(sqlite_base, "_background", False)
    import importlib

    import consentry.wsgi

    importlib.reload(consentry.wsgi)  # the server's entry point turns it on
    assert sqlite_base._background is True
    monkeypatch.setattr(sqlite_base, "_background", False)
    raw = connection.get_new_connection(connection.get_connection_params())
    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # SQLite's own
    raw.close()
    sqlite_base.checkpoint_in_background()
    raw = connection.get_new_connection(connection.get_connection_params())
    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == sqlite_base.FALLBACK_PAGES
    raw.close()
    assert started == [str(connection.settings_dict["NAME"])]
    # Every write transaction checks that it still runs (on a database of its own: the
    # test's own connection is inside the test's transaction).
    other = str(tmp_path / "writes.sqlite3")
    wrapper = sqlite_base.DatabaseWrapper({**connection.settings_dict, "NAME": other})
    wrapper.set_autocommit(
        False, force_begin_transaction_with_broken_autocommit=True
    )  # as atomic()
    wrapper.commit()
    wrapper.set_autocommit(True)
    wrapper.close()
    assert started[1:] == [other, other]  # its connection, then its transaction


def test_postgresql_timestamps_are_parsed_in_c_and_labelled_as_django_labels_them():
    """consentry/db/postgresql reads timestamptz with psycopg's C parser where Django's
    loader is pure Python; every value must come out exactly as Django's loader gives it:
    the same instant, the same tzinfo object, for ORM queries and the hot path alike."""
    if connection.vendor != "postgresql":
        pytest.skip("the timestamp loader is PostgreSQL's")
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.pq import Format

    connection.ensure_connection()
    ours = connection.connection.adapters.get_loader(1184, Format.TEXT)
    assert ours.__name__ == "TzLoader"
    assert ours.timezone is connection.timezone
    values = (
        "0001-01-01 00:00:00+00", "1969-12-31 23:59:59.999999+00", "2024-02-29 12:00:00+01",
        "2026-03-29 01:30:00.5+00", "9999-12-31 23:59:59.999999+00", "2000-06-15 08:00:00-09:30",
    )  # fmt: skip
    sql = "SELECT " + ", ".join(f"%s::timestamptz AS v{i}" for i in range(len(values)))
    with connection.cursor() as cursor:  # Django's cursor, our loader
        cursor.execute(sql, list(values))
        got = cursor.fetchone()
    with prepared_cursor() as cursor:  # the hot path's
        cursor.execute(sql, list(values))
        hot = cursor.fetchone()
    django_cursor = connection.connection.cursor()
    register_tzloader(connection.timezone, django_cursor)  # Django's own loader
    django_cursor.execute(sql, list(values))
    expected = django_cursor.fetchone()
    django_cursor.close()
    assert got == hot == expected
    assert [v.tzinfo for v in got] == [v.tzinfo for v in expected] == [connection.timezone] * 6
    assert [v.isoformat() for v in got] == [v.isoformat() for v in expected]
    with connection.cursor() as cursor:
        cursor.execute("SELECT NULL::timestamptz")
        assert cursor.fetchone() == (None,)
