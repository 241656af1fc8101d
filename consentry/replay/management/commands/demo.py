"""`consentry demo`: replay the Cambridge Analytica case, print the report, serve the site.

Everything lives under var/demo/ and never touches CONSENTRY_DATABASE_URL: one SQLite
file holds the generated world (kept, so a second run with the same --people and --seed
reuses it), and each policy replays in its own copy, in its own child process (the three
run side by side). The Consentry copy is the one served afterwards. A finished report for
the same parameters is reused as it is: delete var/demo/ (or pass --fresh) to replay again.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from consentry import config
from consentry.replay.report import build_report, table
from consentry.replay.runner import Policy
from consentry.replay.scenario import Params

SERVED = Policy.CONSENTRY


def demo_dir() -> Path:
    return config.var_dir() / "demo"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def child_env(database: Path) -> dict[str, str]:
    """The environment of a step: its own SQLite database, an in-process cache (the
    policies' rate-limit counters must not meet in a shared Redis)."""
    env = dict(os.environ)
    env["CONSENTRY_DATABASE_URL"] = sqlite_url(database)
    env.pop("CONSENTRY_REDIS_URL", None)
    return env


def consentry_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "consentry", *args]


def copy_database(source: Path, target: Path) -> None:
    """Copy an SQLite database that no process has open, with its write-ahead log if one
    was left beside it (SQLite replays it on open)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


class Command(BaseCommand):
    help = (
        "Replay the Cambridge Analytica case: generate a world (--people, default 20,000), "
        "run about 120 simulated days of a birthday calendar, a personality quiz installed "
        "by 1% of people and a few ordinary apps through the real OAuth provider and Graph "
        "API, under the legacy v1.0 rule (comparison only), Consentry, and Consentry with "
        "friend-sharing opt-ins; print the report (also at /demo/report), then serve the "
        "site with the replay's data and print the demo sign-ins."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--people", type=int, default=Params.people)
        parser.add_argument("--seed", type=int, default=Params.seed)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="stop after the report")
        parser.add_argument("--fresh", action="store_true", help="replay again from scratch")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["people"] < 10:
            raise CommandError("--people must be at least 10")
        params = Params(people=opts["people"], seed=opts["seed"])
        folder = demo_dir()
        folder.mkdir(parents=True, exist_ok=True)
        report_path = folder / "report.json"
        served = folder / f"{SERVED.value}.sqlite3"
        report = self._reusable(report_path, served, params)
        if report is None or opts["fresh"]:
            started = time.perf_counter()
            world = self._world(folder, params, opts["fresh"])
            results = self._replay(folder, world, params)
            report = build_report(params, results, time.perf_counter() - started)
            report_path.write_text(json.dumps(report, indent=1))
            self._step(served, "replay", "publish", str(report_path))
        else:
            self.stdout.write(f"Reusing the replay in {folder} (--fresh replays again).")
        self.stdout.write("")
        self.stdout.write(table(report))
        self.stdout.write(f"\nReport: {report_path} (served at /demo/report and /demo/report.json)")
        self._print_sign_ins(folder / "sign-ins.json", opts)
        if not opts["no_serve"]:
            argv = consentry_argv("serve", "--host", opts["host"], "--port", str(opts["port"]))
            subprocess.run(argv, env=child_env(served), check=False)  # noqa: S603

    def _reusable(self, path: Path, served: Path, params: Params) -> dict[str, Any] | None:
        if not path.exists() or not served.exists():
            return None
        try:
            report: dict[str, Any] = json.loads(path.read_text())
        except ValueError:
            return None
        same = (
            report.get("params", {}).get("people") == params.people
            and report.get("params", {}).get("seed") == params.seed
        )
        return report if same else None

    def _step(self, database: Path, *args: str) -> None:
        done = subprocess.run(  # noqa: S603
            consentry_argv(*args), env=child_env(database), capture_output=True, text=True
        )
        if done.returncode != 0:
            raise CommandError(f"`consentry {' '.join(args)}` failed:\n{done.stderr[-3000:]}")

    def _world(self, folder: Path, params: Params, fresh: bool) -> Path:
        world = folder / f"world-{params.people}-{params.seed}.sqlite3"
        if world.exists() and not fresh:
            self.stdout.write(f"Reusing the generated world {world.name}.")
            return world
        for suffix in ("", "-wal", "-shm"):
            Path(f"{world}{suffix}").unlink(missing_ok=True)
        self.stdout.write(f"Generating a world of {params.people:,} people (seed {params.seed})…")
        self._step(
            world, "replay", "world", "--people", str(params.people), "--seed", str(params.seed)
        )
        return world

    def _replay(self, folder: Path, world: Path, params: Params) -> dict[str, dict[str, Any]]:
        """Run the three policies side by side, with a progress bar each."""
        children: dict[Policy, subprocess.Popen[str]] = {}
        bars: dict[Policy, Any] = {}
        for position, policy in enumerate(Policy):
            database = folder / f"{policy.value}.sqlite3"
            copy_database(world, database)
            argv = [
                "replay",
                "run",
                "--policy",
                policy.value,
                "--out",
                str(folder / f"{policy.value}.json"),
                "--progress-lines",
            ]
            if policy is SERVED:
                argv += ["--sign-ins", str(folder / "sign-ins.json")]
            # The child's log goes to a file: a pipe nobody drains would fill up and stop it.
            with (folder / f"{policy.value}.log").open("w") as log:
                children[policy] = subprocess.Popen(  # noqa: S603
                    consentry_argv(*argv),
                    env=child_env(database),
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
            bars[policy] = tqdm(
                disable=not sys.stdout.isatty(),
                total=1,
                desc=f"{policy.heading:<20}",
                position=position,
                unit="event",
                file=sys.stdout,
                dynamic_ncols=True,
                leave=True,
            )
        self._follow(children, bars)
        for bar in bars.values():
            bar.close()
        if not sys.stdout.isatty():
            for policy in Policy:
                self.stdout.write(f"{policy.heading}: replayed")
        failed = {p: c for p, c in children.items() if c.returncode != 0}
        if failed:
            policy = next(iter(failed))
            errors = (folder / f"{policy.value}.log").read_text(errors="replace")
            raise CommandError(f"the {policy.heading} replay failed:\n{errors[-3000:]}")
        return {p.value: json.loads((folder / f"{p.value}.json").read_text()) for p in Policy}

    def _follow(
        self, children: dict[Policy, subprocess.Popen[str]], bars: dict[Policy, Any]
    ) -> None:
        selector = selectors.DefaultSelector()
        for policy, child in children.items():
            assert child.stdout is not None
            selector.register(child.stdout, selectors.EVENT_READ, policy)
        open_streams = len(children)
        while open_streams:
            for key, _ in selector.select(timeout=1.0):
                stream: IO[str] = key.fileobj  # type: ignore[assignment]
                line = stream.readline()
                if not line:
                    selector.unregister(stream)
                    open_streams -= 1
                    continue
                parts = line.split()
                if len(parts) == 4 and parts[0] == "PROGRESS":
                    bar = bars[key.data]
                    stage, done, total = parts[1], int(parts[2]), int(parts[3])
                    bar.set_postfix_str(stage, refresh=False)
                    bar.total = max(total, 1)
                    bar.n = done
                    bar.refresh()
        for child in children.values():
            child.wait()

    def _print_sign_ins(self, path: Path, opts: dict[str, Any]) -> None:
        if not path.exists():
            return
        signins = json.loads(path.read_text())
        base = f"http://{opts['host']}:{opts['port']}"
        lines = [
            "",
            f"Sign in at {base}/accounts/login/ (password {signins['password']!r} for the demo "
            "people and developers):",
        ]
        person = signins.get("person") or {}
        if person.get("email"):
            lines.append(
                f"  person     {person['email']} ({person['name']}): installed the quiz; "
                f"their privacy center shows what it read"
            )
        lines.append(
            f"  developer  {signins['developer']['email']}: the Personality Quiz's developer"
        )
        staff = signins.get("staff")
        if staff:
            lines += [
                f"  staff      {staff['email']}: the staff console ({base}/staff/) needs a "
                "second factor:",
                f"             TOTP secret {staff['totp_secret']} (add it to an "
                "authenticator app, or get the current code with",
                f"             {sys.executable} -c 'import pyotp; print(pyotp.TOTP("
                f'"{staff["totp_secret"]}").now())\')',
            ]
        lines.append(f"The report: {base}/demo/report")
        self.stdout.write("\n".join(lines))
