"""Signed data-use agreements and review decisions are append-only: the database refuses
UPDATE of their rows (and DELETE on PostgreSQL, where the test flush uses TRUNCATE, which
row triggers do not see; on SQLite the flush deletes rows, so the models refuse deletion
there), whatever code tries. A correction is a new row."""

from django.db import migrations

TABLES = ("developers_signedagreement", "developers_reviewdecision")


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "sqlite":
            schema_editor.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;"
            )
        elif vendor == "postgresql":
            schema_editor.execute(
                f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN RAISE EXCEPTION '{table} is append-only'; END $$;"
            )
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only();"
            )


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "sqlite":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update;")
        elif vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {table}_append_only();")


class Migration(migrations.Migration):
    dependencies = [("developers", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
