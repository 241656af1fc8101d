"""`consentry bench [NAME [ARGS...]]`: list or run the benchmarks under bench/."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

BENCH_DIR = Path(__file__).resolve().parents[4] / "bench"


def available() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_"))


class Command(BaseCommand):
    help = (
        "Run one benchmark from bench/ (each measures against a baseline in the same run and "
        "ends with one line of JSON). Without a name, list them. Arguments after the name go "
        "to the script, e.g. `consentry bench world_generate --people 100000`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?")
        # Not "args": Django takes that name for the positional arguments of handle().
        parser.add_argument("script_args", nargs=argparse.REMAINDER)

    def handle(self, *args: Any, **opts: Any) -> None:
        names = available()
        if not opts["name"]:
            for name in names:
                self.stdout.write(name)
            return
        if opts["name"] not in names:
            raise CommandError(f"no benchmark {opts['name']!r}; available: {', '.join(names)}")
        # A separate process: each benchmark sets up its own scratch database before Django.
        result = subprocess.run(  # noqa: S603
            [sys.executable, str(BENCH_DIR / f"{opts['name']}.py"), *opts["script_args"]],
            check=False,
        )
        if result.returncode:
            raise CommandError(f"benchmark {opts['name']} failed (exit {result.returncode})")
