"""`consentry replay world|run|publish`: the steps of `consentry demo`, one database each.

`consentry demo` runs these in child processes, each against its own SQLite file under
var/demo/ (docs/replay.md). They refuse any database that `replay world` did not create.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from consentry.oauth.models import Application
from consentry.replay.figures import policy_figures
from consentry.replay.models import DemoWorld, ReplayReport
from consentry.replay.runner import Policy, run_policy
from consentry.replay.scenario import Params
from consentry.replay.signins import demo_sign_ins
from consentry.world.loader import world_is_empty


def progress_line(stage: str, done: int, total: int) -> None:
    """One machine-readable progress line for the parent `consentry demo`."""
    sys.stdout.write(f"PROGRESS {stage} {done} {total}\n")
    sys.stdout.flush()


class Command(BaseCommand):
    help = (
        "Steps of the Cambridge Analytica replay (normally run by `consentry demo`): "
        "`world` generates a demo world into an empty database and marks it as a demo "
        "database; `run --policy P` replays the scenario under one policy and writes its "
        "figures as JSON; `publish FILE` stores a finished report for /demo/report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="step", required=True)
        world = sub.add_parser("world")
        world.add_argument("--people", type=int, default=Params.people)
        world.add_argument("--seed", type=int, default=Params.seed)
        run = sub.add_parser("run")
        run.add_argument("--policy", choices=[p.value for p in Policy], required=True)
        run.add_argument("--out", required=True, help="where to write the figures (JSON)")
        run.add_argument("--sign-ins", help="also write the demo sign-ins here (JSON)")
        run.add_argument("--progress-lines", action="store_true")
        publish = sub.add_parser("publish")
        publish.add_argument("report", help="the report JSON file")

    def handle(self, *args: Any, **opts: Any) -> None:
        step = opts["step"]
        if step == "world":
            self.world(opts["people"], opts["seed"])
        elif step == "run":
            self.run(Policy(opts["policy"]), opts)
        else:
            self.publish(Path(opts["report"]))

    def world(self, people: int, seed: int) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        if not world_is_empty() or DemoWorld.objects.exists():
            raise CommandError("replay world needs an empty database")
        call_command("world_generate", people=people, seed=seed, stdout=self.stdout)
        DemoWorld.objects.create(people=people, seed=seed)

    def _demo_world(self) -> DemoWorld:
        marker = DemoWorld.objects.first()
        if marker is None:
            raise CommandError(
                "this database was not created by `consentry replay world`: the replay only "
                "runs in a demo database (see `consentry demo`)"
            )
        return marker

    def run(self, policy: Policy, opts: dict[str, Any]) -> None:
        marker = self._demo_world()
        if Application.objects.exists():
            raise CommandError("this demo database already holds a replay")
        params = Params(people=marker.people, seed=marker.seed)
        progress = progress_line if opts["progress_lines"] else None
        stats = run_policy(policy, params, progress=progress)
        if progress:
            progress("figures", 0, 1)
        figures = policy_figures(stats)
        Path(opts["out"]).write_text(json.dumps(figures, indent=1))
        if opts.get("sign_ins"):
            path = Path(opts["sign_ins"])
            path.write_text(json.dumps(demo_sign_ins(stats), indent=1))
            path.chmod(0o600)
        if progress:
            progress("figures", 1, 1)

    def publish(self, path: Path) -> None:
        self._demo_world()
        report = json.loads(path.read_text())
        with transaction.atomic():
            ReplayReport.objects.all().delete()
            ReplayReport.objects.create(report=report)
