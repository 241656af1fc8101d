"""`consentry canary check FILE | mail-received ADDRESS | seed`: see
consentry/incidents/canaries.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consentry.incidents import canaries


class Command(BaseCommand):
    help = (
        "Canaries. `check FILE`: name the app whose app-scoped ids, seed-account values or "
        "relay addresses appear in a leaked CSV or JSON Lines file (records a sighting; "
        "exit status 1 when none). `mail-received ADDRESS`: hook for the operator's mail "
        "server when mail reaches a relay address. `seed`: create a seed account for every "
        "live app holding non-basic permissions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        check = sub.add_parser("check", help="name the app a leaked file came from")
        check.add_argument("file", type=Path)
        check.add_argument("--json", action="store_true", help="print JSON")
        check.add_argument("--no-record", action="store_true", help="do not store a sighting")
        mail = sub.add_parser("mail-received", help="mail reached a relay address")
        mail.add_argument("address")
        sub.add_parser("seed", help="seed accounts for live apps")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "check":
            path: Path = options["file"]
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
            try:
                found = canaries.check_file(path, record=not options["no_record"])
            except (OSError, ValueError) as exc:
                raise CommandError(str(exc)) from exc
            if options["json"]:
                self.stdout.write(
                    json.dumps(
                        [
                            {
                                "app_id": a.app_id,
                                "app": a.app_name,
                                "ids": a.ids,
                                "canary_values": a.canary_values,
                                "relay_addresses": a.relay_addresses,
                            }
                            for a in found
                        ]
                    )
                )
            elif not found:
                self.stdout.write("No app's ids, canary values or relay addresses found.")
            for a in found if not options["json"] else []:
                self.stdout.write(
                    f"app {a.app_id} “{a.app_name}”: {a.ids} app-scoped ids, "
                    f"{a.canary_values} canary values, {a.relay_addresses} relay addresses"
                )
            if not found:
                raise SystemExit(1)
        elif action == "mail-received":
            canary = canaries.mail_received(options["address"])
            if canary is None:
                raise CommandError("that address is not a canary relay address")
            self.stdout.write(f"recorded: mail to app {canary.app_id}'s canary")
        else:
            made = canaries.do_seed_canaries()
            for c in made:
                self.stdout.write(f"seeded canary for app {c.app_id}: {c.relay_address}")
            self.stdout.write(f"{len(made)} seed account(s) created")
