"""Partition the call records BY RANGE ("index") on PostgreSQL; nothing on SQLite.

Safe on a live database holding a ledger (docs/scaling.md, "Partitioning the call
records"), because no step rewrites or copies a call record and no long step holds a lock
that appends wait for:

1. A CHECK ("index" < N) NOT VALID on the existing table, N past the highest leaf by one to
   two partitions' worth (appends go on meanwhile and stay below it); an instant ACCESS
   EXCLUSIVE.
2. VALIDATE CONSTRAINT: one scan of the table under SHARE UPDATE EXCLUSIVE, which appends
   and reads do not wait for.
3. In one short transaction: a partitioned table with the same columns, storage, primary key
   and app_id index takes the name; the existing table, renamed, is attached as its first
   partition, leaves [0, N) (the validated CHECK proves the range, so ATTACH scans nothing
   and the existing indexes become the partition's); a DEFAULT partition. The table is
   ACCESS EXCLUSIVE for milliseconds; appends waiting for it then go to the new table.
4. consentry.ledger.partitions.ensure_partitions() adds the partitions beyond N.

Not atomic (each step commits on its own) and re-runnable: an interrupted run starts again
from step 1, and a table already partitioned is left as it is.

Backwards, the rows of every other partition are copied into the first one, which becomes
the plain table again: that copy holds ACCESS EXCLUSIVE on the table for its whole length.
"""

import logging
import time

from django.db import migrations, transaction

from consentry.ledger import partitions

logger = logging.getLogger("consentry.ledger")

TABLE = "ledger_callrecord"
FIRST = partitions.partition_name(0)
BOUND = f"{FIRST}_range"


def _app_index(cursor, table):
    """The name of the app_id index Django created (named after a hash of the model)."""
    cursor.execute(
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] "
        "WHERE x.indrelid = to_regclass(%s) AND x.indnatts = 1 AND a.attname = 'app_id'",
        [table],
    )
    row = cursor.fetchone()
    return row[0] if row else None


def forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    alias = connection.alias
    with connection.cursor() as cursor:
        if partitions.is_partitioned(cursor):
            partitions.ensure_partitions(using=alias)
            return
    size = partitions.partition_size()
    with (
        transaction.atomic(using=alias),
        connection.cursor() as cursor,
        partitions.ddl_lock_timeout(cursor),
    ):
        cursor.execute(f'SELECT max("index") FROM {TABLE}')  # noqa: S608
        highest = cursor.fetchone()[0]
        # Room for one to two partitions of appends while step 2 scans.
        end = ((highest + 1) // size + 2) * size if highest is not None else size
        cursor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {BOUND}")
        cursor.execute(
            f'ALTER TABLE {TABLE} ADD CONSTRAINT {BOUND} CHECK ("index" >= 0 AND "index" < {end}) '
            "NOT VALID"
        )
    began = time.perf_counter()
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} VALIDATE CONSTRAINT {BOUND}")
    validated = time.perf_counter()
    with (
        transaction.atomic(using=alias),
        connection.cursor() as cursor,
        partitions.ddl_lock_timeout(cursor),
    ):
        app_index = _app_index(cursor, TABLE)
        pkey = _primary_key_index(cursor, TABLE)
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {FIRST}")
        cursor.execute(f'ALTER INDEX "{pkey}" RENAME TO {FIRST}_pkey')
        cursor.execute(f"ALTER INDEX {app_index} RENAME TO {FIRST}_app_id")
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {FIRST} INCLUDING DEFAULTS INCLUDING STORAGE "
            'INCLUDING COMMENTS) PARTITION BY RANGE ("index")'
        )
        cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY ("index")')
        cursor.execute(f"CREATE INDEX {app_index} ON {TABLE} (app_id)")
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {FIRST} FOR VALUES FROM (0) TO ({end})"
        )
        cursor.execute(f"ALTER TABLE {FIRST} DROP CONSTRAINT {BOUND}")
        cursor.execute(f"CREATE TABLE {partitions.DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")
    swapped = time.perf_counter()
    logger.info(
        "ledger_callrecord partitioned: %s entries checked below leaf %d in %.2f s (appends "
        "went on), then the table was swapped in %.1f ms (ACCESS EXCLUSIVE)",
        0 if highest is None else highest + 1,
        end,
        validated - began,
        (swapped - validated) * 1000,
    )
    partitions.ensure_partitions(using=alias)


def backward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if not partitions.is_partitioned(cursor):
            return
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        lay = partitions.read_layout(cursor)
        attached = [p.name for p in lay.ranges] + ([lay.default] if lay.default else [])
        app_index = _app_index(cursor, TABLE)
        for name in attached:
            cursor.execute(f'ALTER TABLE {TABLE} DETACH PARTITION "{name}"')
        first = lay.holding(0)
        if first is not None:
            base = first.name
        elif attached:
            base = attached[0]
        else:
            base = FIRST
            cursor.execute(f"CREATE TABLE {FIRST} (LIKE {TABLE} INCLUDING ALL)")
        cursor.execute(f"DROP TABLE {TABLE}")
        for name in attached:
            if name != base:
                cursor.execute(
                    f'INSERT INTO "{base}" ({partitions.COLUMNS}) SELECT {partitions.COLUMNS} '  # noqa: S608
                    f'FROM "{name}" ORDER BY "index"'
                )
                cursor.execute(f'DROP TABLE "{name}"')
        cursor.execute(f'ALTER TABLE "{base}" RENAME TO {TABLE}')
        pkey = _primary_key_index(cursor, TABLE)
        cursor.execute(f'ALTER INDEX "{pkey}" RENAME TO {TABLE}_pkey')
        own_app_index = _app_index(cursor, TABLE)
        if app_index and own_app_index and own_app_index != app_index:
            cursor.execute(f'ALTER INDEX "{own_app_index}" RENAME TO {app_index}')


def _primary_key_index(cursor, table):
    cursor.execute(
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = to_regclass(%s) AND x.indisprimary",
        [table],
    )
    return cursor.fetchone()[0]


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("ledger", "0003_scale_tiles")]
    operations = [migrations.RunPython(forward, backward)]
