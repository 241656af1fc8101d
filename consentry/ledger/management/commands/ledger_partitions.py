"""`consentry ledger partitions`: show the call records' partitions (PostgreSQL) and, with
--ensure, create the ones due now (docs/scaling.md, "Partitioning the call records")."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consentry.ledger.partitions import ensure_partitions, layout


class Command(BaseCommand):
    help = (
        "Print the call records' partition layout as JSON, with notes when upkeep fell "
        "behind. --ensure first does the upkeep the worker's sweep does every 10 minutes: "
        "partitions ready beyond the head, entries in the default partition moved into "
        "range partitions. Exits with status 1 when the layout would fail appends or lost "
        "entries. Nothing to do on SQLite."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--ensure", action="store_true", help="create the partitions due now first"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        created = ensure_partitions() if opts["ensure"] else []
        lay = layout()
        for name in created:
            self.stderr.write(f"created {name}")
        for note in lay.notes():
            self.stderr.write(f"note: {note}")
        self.stdout.write(json.dumps(lay.as_dict()))
        if problems := lay.problems():
            raise CommandError("; ".join(problems))
