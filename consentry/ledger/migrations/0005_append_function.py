"""PostgreSQL: one append of the ledger as one server-side function (docs/ledger.md,
"Appending").

`consentry_ledger_append` locks the head row, splices the leaf index it finds and the time
it took the lock into the canonical leaf input the caller built with both 0
(consentry/ledger/records.py: the index is bytes 1..8 and the microseconds since the epoch
bytes 9..16, big-endian; so times follow leaf order, as with SQLite's one writer), hashes
the leaf and moves the Merkle frontier past it exactly as
merkle.frontier_append does (RFC 6962: SHA-256(0x00 || input), SHA-256(0x01 || left ||
right)), updates the head and inserts the call record. Called as a statement of its own it
commits by itself, so the head row's lock lasts that one statement inside the server, and
concurrent appenders queue on the lock instead of retrying from heads that went stale.
Inside a transaction the lock lasts until that transaction ends, as the head row's lock
always did. `consentry ledger verify` recomputes every leaf in Python from the stored row.

SQLite has no functions of this kind; its appends stay in Python (one writer at a time).
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION consentry_ledger_append(
    p_app_id bigint,
    p_actor_id bigint,
    p_token_id bigint,
    p_endpoint varchar,
    p_subject_count integer,
    p_subjects bytea,
    p_leaf_input bytea,
    OUT leaf_index bigint,
    OUT new_frontier bytea,
    OUT created_at timestamptz
) LANGUAGE plpgsql AS $fn$
DECLARE
    f bytea;
    leaf bytea;
    h bytea;
    s bigint;
    micros bigint;
BEGIN
    IF length(p_leaf_input) < 17 THEN
        RAISE EXCEPTION USING MESSAGE = 'ledger leaf input too short';
    END IF;
    SELECT size, frontier INTO leaf_index, f FROM ledger_ledgerhead WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO ledger_ledgerhead (id, size, frontier) VALUES (1, 0, '\x'::bytea)
            ON CONFLICT (id) DO NOTHING;
        SELECT size, frontier INTO leaf_index, f FROM ledger_ledgerhead WHERE id = 1 FOR UPDATE;
    END IF;
    IF length(f) <> 32 * length(replace(leaf_index::bit(64)::text, '0', '')) THEN
        RAISE EXCEPTION USING MESSAGE = 'ledger frontier does not fit tree size ' || leaf_index;
    END IF;
    created_at := date_trunc('microseconds', clock_timestamp());
    -- Microseconds since the epoch, exactly on every version (whole seconds, then the
    -- microseconds field, which counts from the minute).
    micros := extract(epoch FROM date_trunc('second', created_at))::bigint * 1000000
        + mod(extract(microseconds FROM created_at)::bigint, 1000000);
    leaf := sha256('\x00'::bytea || overlay(p_leaf_input
        placing int8send(leaf_index) || int8send(micros) from 2 for 16));
    h := leaf;
    s := leaf_index;
    WHILE s & 1 = 1 LOOP
        h := sha256('\x01'::bytea || substring(f from length(f) - 31 for 32) || h);
        f := substring(f from 1 for length(f) - 32);
        s := s >> 1;
    END LOOP;
    new_frontier := f || h;
    UPDATE ledger_ledgerhead SET size = leaf_index + 1, frontier = new_frontier WHERE id = 1;
    INSERT INTO ledger_callrecord ("index", created_at, app_id, actor_id, token_id, endpoint,
                                   subject_count, subjects, leaf_hash)
        VALUES (leaf_index, created_at, p_app_id, p_actor_id, p_token_id, p_endpoint,
                p_subject_count, p_subjects, leaf);
END
$fn$
"""

DROP = (
    "DROP FUNCTION IF EXISTS consentry_ledger_append("
    "bigint, bigint, bigint, varchar, integer, bytea, bytea)"
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0004_partition_callrecord")]
    operations = [migrations.RunPython(forward, backward)]
