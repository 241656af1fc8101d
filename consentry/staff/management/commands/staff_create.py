"""`consentry staff create EMAIL`: make a staff account with a TOTP second factor."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from consentry.staff.actions import do_create_staff


class Command(BaseCommand):
    help = (
        "Make EMAIL a staff account (creating the person if needed) with a new TOTP device, "
        "and print its otpauth:// provisioning URI for an authenticator app. Staff pages "
        "need that second factor; running this again replaces the device."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--password", help="sign-in password (asked for when the account is new)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        from consentry.people.models import Person

        password = opts["password"]
        if password is None and not Person.objects.filter(email__iexact=opts["email"]).exists():
            password = getpass.getpass("Password for the new staff account: ")
        person, device = do_create_staff(opts["email"], password, name=opts["name"])
        self.stdout.write(f"Staff account: {person.email}")
        self.stdout.write(
            f"TOTP provisioning URI (add it to an authenticator app):\n{device.config_url}"
        )
