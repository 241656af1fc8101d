"""The disclosure ledger's tables (docs/ledger.md).

The ledger proper is `CallRecord` (one row per Graph API call, append-only) plus the
`LedgerHead` state row (tree size and Merkle frontier) and the `SignedTreeHead` rows.
Everything else (`SubjectDisclosure`, `AppReach`, `IndexWatermark`) is *derived* from the
call records, can be rebuilt from them at any time, and is checked against them by
`consentry ledger verify`.

Ids of people, apps and tokens are plain integers on purpose: the ledger must outlive the
deletion of the app, the person or the token it speaks about, so nothing here has a
foreign key that could cascade.
"""

from __future__ import annotations

from django.db import models


class CallRecord(models.Model):
    """One Graph API call: who (app, acting person, token), when, which endpoint, and for
    every subject the mask of fields released (consentry.grants.permissions.RELEASE_BIT).

    `index` is the Merkle leaf index, assigned densely in commit order under the
    `LedgerHead` lock. `subjects` holds the (subject id, mask) pairs packed as in
    consentry/ledger/records.py; `leaf_hash` is RFC 6962 SHA-256(0x00 || leaf input)
    over records.leaf_input() of this row.
    """

    index = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField()
    app_id = models.BigIntegerField(db_index=True)
    actor_id = models.BigIntegerField()
    token_id = models.BigIntegerField(null=True, blank=True)
    endpoint = models.CharField(max_length=200)
    subject_count = models.IntegerField()
    subjects = models.BinaryField()
    leaf_hash = models.BinaryField(max_length=32)

    def __str__(self) -> str:
        return f"ledger entry {self.index}"


class LedgerHead(models.Model):
    """The single state row (pk 1): how many call records there are and the Merkle
    frontier over them (O(log n) hashes, consentry/ledger/merkle.py). Appends lock it
    (SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer) so leaf indexes are
    dense and in commit order."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    size = models.BigIntegerField(default=0)
    frontier = models.BinaryField(default=b"")

    def __str__(self) -> str:
        return f"ledger head at size {self.size}"


class SignedTreeHead(models.Model):
    """An Ed25519 signature over (tree_size, timestamp, root_hash), encoded as RFC 6962
    section 3.5's TreeHeadSignature (see consentry/ledger/signing.py)."""

    tree_size = models.BigIntegerField(primary_key=True)
    timestamp_ms = models.BigIntegerField()
    root_hash = models.BinaryField(max_length=32)
    signature = models.BinaryField(max_length=64)

    def __str__(self) -> str:
        return f"signed tree head at size {self.tree_size}"


class IndexWatermark(models.Model):
    """The single state row (pk 1) of the derived index: every call record with
    index < `upto` has its SubjectDisclosure rows and AppReach bits. Catch-up locks it so
    two processes never derive the same range."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    upto = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"ledger index up to {self.upto}"


class SubjectDisclosure(models.Model):
    """Derived: one row per (subject, call record) for "what did which app read about me".

    The composite primary key (subject_id, entry_index) is the one index the history
    query needs (newest first, paginated by entry index)."""

    pk = models.CompositePrimaryKey("subject_id", "entry_index")
    subject_id = models.BigIntegerField()
    entry_index = models.BigIntegerField()
    app_id = models.BigIntegerField()
    mask = models.IntegerField()

    def __str__(self) -> str:
        return f"subject {self.subject_id} in entry {self.entry_index}"


class AppReach(models.Model):
    """Derived: per app and per release bit, a serialized Roaring bitmap (pyroaring) of
    every subject that bit was ever released about. Their union is the set of subjects
    the app reached; together they give its exact blast radius."""

    pk = models.CompositePrimaryKey("app_id", "bit")
    app_id = models.BigIntegerField()
    bit = models.SmallIntegerField()
    bitmap = models.BinaryField()

    def __str__(self) -> str:
        return f"reach of app {self.app_id} for bit {self.bit}"


class LedgerTile(models.Model):
    """One C2SP tlog-tiles tile at level >= 1 (consentry/ledger/tiles.py): up to 256
    concatenated 32-byte hashes, each the root of a full tile at the level below. Full
    tiles never change; the last tile of a level grows until it is full. Level 0 tiles
    are the call records' leaf hashes and are not stored twice."""

    pk = models.CompositePrimaryKey("level", "number")
    level = models.SmallIntegerField()
    number = models.BigIntegerField()
    hashes = models.BinaryField()

    def __str__(self) -> str:
        return f"ledger tile {self.level}/{self.number}"


class TileWatermark(models.Model):
    """The single state row (pk 1) of the tiles: every leaf with index < `upto` (a
    multiple of 256) is folded into the LedgerTile rows. Catch-up locks it."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    upto = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"ledger tiles up to {self.upto}"
