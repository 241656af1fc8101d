"""`consentry demo`: migrate, generate a small world if there is none, show it, serve."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Avg, Max

from consentry.people.models import Friendship, Post
from consentry.world.loader import world_is_empty, world_people
from consentry.world.management.commands.world_generate import DEMO_PASSWORD


class Command(BaseCommand):
    help = (
        "Set up and serve a demo: apply migrations, generate a synthetic world when the "
        "database holds none (re-running keeps the existing one), print a summary with "
        "sign-in details, then serve the site."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--people", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=2014)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-serve", action="store_true", help="set up and print the summary, then exit"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        if world_is_empty():
            self.stdout.write(
                f"Generating a world of {opts['people']} people (seed {opts['seed']})"
            )
            call_command(
                "world_generate", people=opts["people"], seed=opts["seed"], stdout=self.stdout
            )
        else:
            self.stdout.write("The database already holds a world: skipping generation.")
        self.stdout.write(summary())
        if not opts["no_serve"]:
            call_command("serve", host=opts["host"], port=opts["port"], no_migrate=True)


def summary() -> str:
    """A few lines describing the world and how to sign in as one of its people."""
    people = world_people()
    stats = people.aggregate(mean=Avg("friend_count"), max=Max("friend_count"))
    friendships = Friendship.objects.filter(person__in=people).count() // 2
    examples = list(people.order_by("external_id").values_list("email", flat=True)[:2])
    return "\n".join(
        [
            f"World: {people.count()} people, {friendships} friendships "
            f"(mean {stats['mean'] or 0:.1f}, max {stats['max'] or 0} friends per person), "
            f"{Post.objects.filter(author__in=people).count()} posts.",
            f"Sign in at /accounts/login/ as any generated person, e.g. {' or '.join(examples)}, "
            f"with the demo password {DEMO_PASSWORD!r} (unless the world was generated with "
            "--password).",
        ]
    )
