"""Database triggers that keep Person.friend_count equal to the person's friendship rows.

Together with the CHECK constraint person_friend_count_capped this enforces the 5,000
friend cap in the database itself: any insert that would push a count past the cap fails
with an IntegrityError, whatever wrote it. SQLite uses row triggers; PostgreSQL uses
statement triggers with transition tables so a bulk load updates each person once.
"""

from django.db import migrations

SQLITE_FORWARD = [
    """
    CREATE TRIGGER people_friendship_count_insert AFTER INSERT ON people_friendship
    BEGIN
        UPDATE people_person SET friend_count = friend_count + 1 WHERE id = NEW.person_id;
    END;
    """,
    """
    CREATE TRIGGER people_friendship_count_delete AFTER DELETE ON people_friendship
    BEGIN
        UPDATE people_person SET friend_count = friend_count - 1 WHERE id = OLD.person_id;
    END;
    """,
    """
    CREATE TRIGGER people_friendship_no_update BEFORE UPDATE OF person_id, friend_id
    ON people_friendship
    BEGIN
        SELECT RAISE(ABORT, 'friendships are deleted and created, never re-pointed');
    END;
    """,
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS people_friendship_count_insert;",
    "DROP TRIGGER IF EXISTS people_friendship_count_delete;",
    "DROP TRIGGER IF EXISTS people_friendship_no_update;",
]

POSTGRES_FORWARD = [
    """
    CREATE FUNCTION people_friendship_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE people_person p SET friend_count = p.friend_count + n.c
        FROM (SELECT person_id, count(*) AS c FROM new_rows GROUP BY person_id) n
        WHERE p.id = n.person_id;
        RETURN NULL;
    END $$;
    """,
    """
    CREATE TRIGGER people_friendship_count_insert AFTER INSERT ON people_friendship
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION people_friendship_count_insert();
    """,
    """
    CREATE FUNCTION people_friendship_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE people_person p SET friend_count = p.friend_count - o.c
        FROM (SELECT person_id, count(*) AS c FROM old_rows GROUP BY person_id) o
        WHERE p.id = o.person_id;
        RETURN NULL;
    END $$;
    """,
    """
    CREATE TRIGGER people_friendship_count_delete AFTER DELETE ON people_friendship
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION people_friendship_count_delete();
    """,
    """
    CREATE FUNCTION people_friendship_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'friendships are deleted and created, never re-pointed'
            USING ERRCODE = 'integrity_constraint_violation';
    END $$;
    """,
    """
    CREATE TRIGGER people_friendship_no_update BEFORE UPDATE OF person_id, friend_id
    ON people_friendship FOR EACH ROW EXECUTE FUNCTION people_friendship_no_update();
    """,
]
POSTGRES_BACKWARD = [
    "DROP TRIGGER IF EXISTS people_friendship_count_insert ON people_friendship;",
    "DROP TRIGGER IF EXISTS people_friendship_count_delete ON people_friendship;",
    "DROP TRIGGER IF EXISTS people_friendship_no_update ON people_friendship;",
    "DROP FUNCTION IF EXISTS people_friendship_count_insert();",
    "DROP FUNCTION IF EXISTS people_friendship_count_delete();",
    "DROP FUNCTION IF EXISTS people_friendship_no_update();",
]


def forward(apps, schema_editor):
    statements = (
        POSTGRES_FORWARD if schema_editor.connection.vendor == "postgresql" else SQLITE_FORWARD
    )
    for sql in statements:
        schema_editor.execute(sql)


def backward(apps, schema_editor):
    statements = (
        POSTGRES_BACKWARD if schema_editor.connection.vendor == "postgresql" else SQLITE_BACKWARD
    )
    for sql in statements:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("people", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
