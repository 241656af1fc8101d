"""Store call-record payloads uncompressed on PostgreSQL.

The packed (subject, mask) arrays barely compress, yet PostgreSQL's TOAST tries pglz on
every insert: about 5.6 ms for a 5,000-subject call against 1.6 ms stored EXTERNAL
(measured with bench/read_friends.py). SQLite never compresses, so nothing to do there.
"""

from django.db import migrations


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE ledger_callrecord ALTER COLUMN subjects SET STORAGE EXTERNAL"
        )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE ledger_callrecord ALTER COLUMN subjects SET STORAGE EXTENDED"
        )


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
