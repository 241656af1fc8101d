"""The database itself refuses to change or remove a staff audit event.

On PostgreSQL a row trigger refuses UPDATE and DELETE (TRUNCATE, which only an operator or
the test runner's flush issues, does not fire it). On SQLite the trigger refuses UPDATE;
DELETE is refused by the model, since SQLite's only way to empty a table (which the test
runner needs between tests) is DELETE itself."""

from django.db import migrations

SQLITE = [
    """CREATE TRIGGER staff_audit_no_update BEFORE UPDATE ON staff_staffauditevent
       BEGIN SELECT RAISE(ABORT, 'staff audit events are append-only'); END""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS staff_audit_no_update",
]
POSTGRES = [
    """CREATE FUNCTION staff_audit_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'staff audit events are append-only'; END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER staff_audit_append_only BEFORE UPDATE OR DELETE ON staff_staffauditevent
       FOR EACH ROW EXECUTE FUNCTION staff_audit_append_only()""",
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS staff_audit_append_only ON staff_staffauditevent",
    "DROP FUNCTION IF EXISTS staff_audit_append_only()",
]


def forwards(apps, schema_editor):
    statements = POSTGRES if schema_editor.connection.vendor == "postgresql" else SQLITE
    for sql in statements:
        schema_editor.execute(sql)


def backwards(apps, schema_editor):
    statements = (
        POSTGRES_REVERSE if schema_editor.connection.vendor == "postgresql" else SQLITE_REVERSE
    )
    for sql in statements:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("staff", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
