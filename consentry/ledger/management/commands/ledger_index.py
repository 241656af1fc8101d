"""`consentry ledger index`: bring the derived per-person / per-app index up to date."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from consentry.ledger.api import catch_up_index, indexed_upto, rebuild_index


class Command(BaseCommand):
    help = (
        "Derive the per-person disclosure rows and per-app reach bitmaps for every ledger "
        "entry appended since the last run (queries do this too, lazily; running it from "
        "cron keeps them fast). --rebuild throws the derived index away and derives it "
        "again from the ledger."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rebuild", action="store_true", help="rebuild the derived index from scratch"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        done = rebuild_index() if opts["rebuild"] else catch_up_index()
        self.stdout.write(f"indexed {done} entries; index covers entries below {indexed_upto()}")
