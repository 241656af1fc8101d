"""The database layer under the hot path (issue "Performance"): prepared statements and
the pool's health check on PostgreSQL, SQLite's statement conversion."""

from __future__ import annotations

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
