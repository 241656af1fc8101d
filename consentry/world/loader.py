"""Bulk loading of a generated world (and of imported friendships) into the database.

The ORM would take hours for 20 million friendship rows, so this module writes through
the DB-API cursor: `executemany` in large batches inside one transaction on SQLite,
`COPY ... FROM STDIN` on PostgreSQL. Nothing here bypasses the friendship-cap rule:
`friend_count` is kept by the people app's statement triggers on PostgreSQL and, on
SQLite, by one grouped UPDATE in place of the per-row trigger (see _counted_in_bulk);
either way the CHECK constraint refuses anyone past MAX_FRIENDS
(people/migrations/0002_friendship_triggers.py). Rows go in sorted by
(person_id, friend_id), so the unique index is appended to at its right edge
(bench/world_generate.py measures the cost).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import repeat
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from consentry.people.fields import PROFILE_FIELDS, audience_column
from consentry.people.models import Person
from consentry.world.generator import World
from consentry.world.records import PersonRecord, PostRecord

BATCH = 200_000
LOAD_CACHE_KIB = -1_048_576  # SQLite page cache during a friendship load: 1 GiB
Progress = Callable[[int], object]  # called with the number of rows just written


class WorldNotEmpty(RuntimeError):
    """Generating into a database that already holds a world, without --replace."""


@dataclass(frozen=True)
class LoadStats:
    people: int
    friendships: int  # undirected; twice as many rows
    posts: int
    seconds: float  # the whole transaction, including the check and any --replace
    phase_seconds: dict[str, float]  # people, friendships, posts

    @property
    def rows(self) -> int:
        return self.people + 2 * self.friendships + self.posts


PERSON_COLUMNS: tuple[str, ...] = (
    "password",
    "last_login",
    "is_superuser",
    "is_staff",
    "is_active",
    "date_joined",
    "friend_count",
    "external_id",
    "email",
    "name",
    "picture",
    "birthday",
    "hometown",
    "current_city",
    "relationship_status",
    "likes",
    "friend_share_mask",
    "language",
    "email_verified_at",
    *(audience_column(f) for f in PROFILE_FIELDS),
)
POST_COLUMNS: tuple[str, ...] = ("external_id", "author_id", "created_at", "message", "audience")


def _is_sqlite() -> bool:
    return connection.vendor == "sqlite"


def world_people() -> Any:
    """The people of the world: everyone with an external id (generated or imported).
    Accounts made on the site itself (staff, sign-ups) are not part of it."""
    return Person.objects.filter(external_id__isnull=False)


def world_is_empty() -> bool:
    return not world_people().exists()


def delete_world() -> int:
    """Delete every world person with their friendships and posts; returns how many
    people. Must run inside a transaction. Friendship rows are deleted with plain SQL
    first (the triggers still fire, so friends outside the world keep exact counts),
    which spares the ORM collector millions of rows."""
    world = "SELECT id FROM people_person WHERE external_id IS NOT NULL"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM people_friendship WHERE person_id IN ({world})")  # noqa: S608
        cursor.execute(f"DELETE FROM people_friendship WHERE friend_id IN ({world})")  # noqa: S608
        cursor.execute(f"DELETE FROM people_post WHERE author_id IN ({world})")  # noqa: S608
    deleted, _ = world_people().delete()
    return deleted


def do_load_world(
    world: World, password_hash: str, *, replace: bool = False, progress: Progress | None = None
) -> LoadStats:
    """Write a generated world in one transaction: all of it or nothing.

    Refuses (WorldNotEmpty) if the database already holds a world, unless `replace`,
    which deletes it first in the same transaction. Every person gets `password_hash`.
    """
    started = time.perf_counter()
    with transaction.atomic(durable=True):
        if not world_is_empty():
            if not replace:
                raise WorldNotEmpty(
                    f"the database already holds {world_people().count()} people of a world; "
                    "use --replace to delete them and generate a new one"
                )
            delete_world()
        phases = {}
        mark = time.perf_counter()
        ids = insert_people(world.people, password_hash, progress)
        phases["people"], mark = time.perf_counter() - mark, time.perf_counter()
        pairs = ids[world.friendships] if len(world.friendships) else np.zeros((0, 2), np.int64)
        insert_friendships(pairs[:, 0], pairs[:, 1], progress)
        phases["friendships"], mark = time.perf_counter() - mark, time.perf_counter()
        id_of = dict(zip((p.id for p in world.people), ids.tolist(), strict=True))
        insert_posts(world.posts, id_of, progress)
        phases["posts"] = time.perf_counter() - mark
    return LoadStats(
        len(world.people),
        len(world.friendships),
        len(world.posts),
        time.perf_counter() - started,
        phases,
    )


def person_row(record: PersonRecord, password: str, joined: datetime) -> tuple[Any, ...]:
    """Values for PERSON_COLUMNS, as Python objects."""
    values = record.columns()
    fixed = {
        "password": password,
        "last_login": None,
        "is_superuser": False,
        "is_staff": False,
        "is_active": True,
        "date_joined": joined,
        "friend_count": 0,
    }
    return tuple(fixed[c] if c in fixed else values[c] for c in PERSON_COLUMNS)


def insert_people(
    people: Sequence[PersonRecord],
    password: str | Callable[[], str],
    progress: Progress | None = None,
) -> np.ndarray:
    """Insert new people; returns their primary keys in the order given. `password` is
    the stored hash for everyone, or a function making one per person."""
    joined = timezone.now()
    rows = (
        person_row(p, password if isinstance(password, str) else password(), joined) for p in people
    )
    _insert("people_person", PERSON_COLUMNS, rows, progress)
    with connection.cursor() as cursor:
        cursor.execute("SELECT external_id, id FROM people_person WHERE external_id IS NOT NULL")
        id_of: dict[str, int] = dict(cursor.fetchall())
    return np.array([id_of[p.id] for p in people], dtype=np.int64)


def insert_posts(
    posts: Iterable[PostRecord], id_of: dict[str, int], progress: Progress | None = None
) -> None:
    """Insert new posts; `id_of` maps author external ids to primary keys."""
    rows = ((p.id, id_of[p.author], p.created_at, p.message, p.audience.value) for p in posts)
    _insert("people_post", POST_COLUMNS, rows, progress)


def insert_friendships(a: np.ndarray, b: np.ndarray, progress: Progress | None = None) -> None:
    """Insert the undirected friendships (a[k], b[k]) as both rows, sorted by person.

    The database refuses the lot (django.db.IntegrityError) if anyone would pass the cap.
    """
    # Raw DB-API errors become Django's, as they would through the ORM.
    with connection.wrap_database_errors:
        _insert_friendships(a, b, progress)


def _insert_friendships(a: np.ndarray, b: np.ndarray, progress: Progress | None) -> None:
    person = np.concatenate([a, b]).astype(np.int64)
    friend = np.concatenate([b, a]).astype(np.int64)
    order = np.lexsort((friend, person))
    person, friend = person[order], friend[order]
    now = timezone.now()
    columns = ("person_id", "friend_id", "created_at")
    if _is_sqlite():
        stamp = connection.ops.adapt_datetimefield_value(now)
        sql = "INSERT INTO people_friendship (person_id, friend_id, created_at) VALUES (?, ?, ?)"
        raw = _raw_cursor()
        # A bigger page cache for the load keeps the growing table and index in memory
        # instead of spilling pages to the WAL mid-transaction (measured ~25% faster).
        (cache_size,) = raw.execute("PRAGMA cache_size").fetchone()
        raw.execute(f"PRAGMA cache_size = {LOAD_CACHE_KIB}")
        try:
            with _counted_in_bulk(raw):
                for start in range(0, len(person), BATCH):
                    p = person[start : start + BATCH].tolist()
                    f = friend[start : start + BATCH].tolist()
                    raw.executemany(sql, zip(p, f, repeat(stamp, len(p)), strict=True))
                    if progress:
                        progress(len(p))
        finally:
            raw.execute(f"PRAGMA cache_size = {int(cache_size)}")
        return
    stamp_text = now.isoformat()
    with _raw_cursor() as cursor:
        for start in range(0, len(person), BATCH):
            p = person[start : start + BATCH].tolist()
            f = friend[start : start + BATCH].tolist()
            text = "".join(f"{x}\t{y}\t{stamp_text}\n" for x, y in zip(p, f, strict=True))
            with cursor.copy(f"COPY people_friendship ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write(text)
            if progress:
                progress(len(p))


COUNT_TRIGGER = "people_friendship_count_insert"


@contextlib.contextmanager
def _counted_in_bulk(raw: Any) -> Iterator[None]:
    """SQLite only, inside the load's transaction: count the inserted rows with one
    grouped UPDATE instead of the per-row insert trigger (which doubles a 20-million-row
    load).

    The trigger is dropped and re-created from its own stored SQL within the same
    transaction, so no other connection ever sees the table without it (SQLite DDL is
    transactional; a failure rolls the drop back with everything else). The cap stays
    the database's: the grouped UPDATE goes through the CHECK constraint on friend_count,
    and a count past MAX_FRIENDS fails the whole load.
    """
    (trigger_sql,) = raw.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", [COUNT_TRIGGER]
    ).fetchone()
    (before,) = raw.execute("SELECT coalesce(max(id), 0) FROM people_friendship").fetchone()
    raw.execute(f"DROP TRIGGER {COUNT_TRIGGER}")
    try:
        yield
        raw.execute(
            """
            UPDATE people_person SET friend_count = friend_count + n.c
            FROM (SELECT person_id, count(*) AS c FROM people_friendship WHERE id > ?
                  GROUP BY person_id) AS n
            WHERE people_person.id = n.person_id
            """,
            [before],
        )
    finally:
        raw.execute(trigger_sql)


def friendship_pairs() -> np.ndarray:
    """Every undirected friendship once, as (smaller pk, larger pk) rows; both
    directions are stored, so the rows with person_id < friend_id are all of them."""
    chunks = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT person_id, friend_id FROM people_friendship WHERE person_id < friend_id"
        )
        while batch := cursor.fetchmany(500_000):
            chunks.append(np.array(batch, dtype=np.int64))
    return np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.int64)


def _raw_cursor() -> Any:
    """The DB-API cursor under Django's wrapper, inside Django's current transaction."""
    connection.ensure_connection()
    return connection.connection.cursor()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _insert(
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    progress: Progress | None,
) -> None:
    """Bulk insert plain rows: executemany (SQLite) or COPY (PostgreSQL), in batches."""
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        if not batch:
            return
        if _is_sqlite():
            marks = ", ".join("?" * len(columns))
            _raw_cursor().executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                [tuple(_sqlite_value(v) for v in row) for row in batch],
            )
        else:
            with (
                _raw_cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in batch:
                    copy.write_row(
                        [
                            json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v
                            for v in row
                        ]
                    )
        if progress:
            progress(len(batch))
        batch.clear()

    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH // 4:
            flush()
    flush()
