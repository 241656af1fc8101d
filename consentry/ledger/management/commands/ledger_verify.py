"""`consentry ledger verify`: recompute the whole disclosure ledger and name the first
entry that does not match (docs/ledger.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from consentry.ledger.api import verify_ledger


class Command(BaseCommand):
    help = (
        "Recompute every leaf hash from the stored call records, the Merkle root at every "
        "signed tree head (and check its Ed25519 signature), the ledger head, and the "
        "derived per-person and per-app index, and on PostgreSQL the call records' partitions. "
        "Prints notes on the partition layout, then OK with counts, or names the first "
        "entry that does not match and exits with status 1. Run it from cron and after any "
        "restore from backup."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        report = verify_ledger()
        for note in report.notes:
            self.stderr.write(f"note: {note}")
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(report.summary())
