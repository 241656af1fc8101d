"""`consentry world export DIR`: write the world in the import format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from consentry.world.exporter import write_world


class Command(BaseCommand):
    help = (
        "Write people.jsonl, friendships.jsonl and posts.jsonl (the `consentry import` format) "
        "for everyone with an external id, sorted so that equal worlds give identical files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)

    def handle(self, *args: Any, **opts: Any) -> None:
        stats = write_world(opts["directory"])
        self.stdout.write(
            f"exported {stats.people} people, {stats.friendships} friendships and "
            f"{stats.posts} posts to {opts['directory']}"
        )
