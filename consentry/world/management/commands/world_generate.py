"""`consentry world generate --people N --seed S`: fill an empty database with a
deterministic synthetic world (consentry.world.generator)."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser

from consentry.world.generator import WorldParams, generate_world
from consentry.world.loader import WorldNotEmpty, do_load_world, world_is_empty
from consentry.world.progress import progress_bar

DEMO_PASSWORD = "consentry-demo"  # noqa: S105 (documented, public, for synthetic people only)


class Command(BaseCommand):
    help = (
        "Generate a deterministic synthetic world: people with Dutch and English names, "
        "friendships (mean ~200 friends, heavy tail, at most 5,000), likes, posts and a mix "
        "of audience settings. Same --seed, same world. Every generated person signs in with "
        f"the demo password ({DEMO_PASSWORD!r} unless --password). It is hashed once and "
        "the one argon2 hash is shared by all: hashing 100,000 times would take hours, and "
        "the password is public anyway. Refuses a database that already holds a world "
        "unless --replace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--people", type=int, required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--password", default=DEMO_PASSWORD)
        parser.add_argument("--mean-friends", type=float, default=200.0)
        parser.add_argument(
            "--replace", action="store_true", help="delete the existing world first"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["people"] < 1:
            raise CommandError("--people must be at least 1")
        if not opts["replace"] and not world_is_empty():  # fail before minutes of work
            raise CommandError(
                "the database already holds a world; use --replace to delete it and "
                "generate a new one"
            )
        params = WorldParams(opts["people"], opts["seed"], mean_friends=opts["mean_friends"])
        started = time.perf_counter()
        world = generate_world(params)
        generated = time.perf_counter() - started
        rows = len(world.people) + 2 * len(world.friendships) + len(world.posts)
        try:
            with progress_bar(self.stdout, "loading", rows, "rows") as bar:
                stats = do_load_world(
                    world, make_password(opts["password"]), replace=opts["replace"], progress=bar
                )
        except WorldNotEmpty as exc:
            raise CommandError(str(exc)) from None
        degrees = world.degrees()
        self.stdout.write(
            f"world seed {params.seed}: {stats.people} people, {stats.friendships} friendships "
            f"(mean {degrees.mean():.1f}, max {degrees.max(initial=0)} friends), "
            f"{stats.posts} posts; generated in {generated:.1f}s, loaded in "
            f"{stats.seconds:.1f}s"
        )
