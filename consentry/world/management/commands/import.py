"""`consentry import PATH [PATH ...]`: bulk import of people, friendships and posts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consentry.world.importer import ImportFailed, do_import_file, import_paths
from consentry.world.progress import progress_bar
from consentry.world.records import KINDS


class Command(BaseCommand):
    help = (
        "Import JSON Lines files: people*.jsonl, friendships*.jsonl, posts*.jsonl (or --kind). "
        "A directory imports its people.jsonl, friendships.jsonl and posts.jsonl in that order. "
        "Each file is one transaction: any bad record aborts that file with FILE:LINE: reason "
        "and writes nothing. Re-importing a file changes nothing (matched by external id)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--kind", choices=KINDS, help="what the files hold")

    def handle(self, *args: Any, **opts: Any) -> None:
        files = import_paths(opts["paths"])
        if not files:
            raise CommandError(
                "nothing to import: the directory has no people.jsonl, friendships.jsonl "
                "or posts.jsonl"
            )
        for path in files:
            try:
                with progress_bar(self.stdout, str(path), None, "lines") as bar:
                    result = do_import_file(path, opts["kind"], progress=bar)
            except ImportFailed as exc:
                raise CommandError(f"import aborted, nothing written from {path}:\n{exc}") from None
            self.stdout.write(result.summary())
