"""`consentry apps create|list`: staff register third-party apps (OAuth clients) until the
developer console exists.

    consentry apps create --name Calendar --redirect-uri https://cal.example/cb \\
        --permissions user_birthday --purpose "user_birthday=Shows birthdays" --live --json

The client secret is printed once and stored only hashed.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from consentry.oauth.actions import do_create_application
from consentry.oauth.models import Application


class Command(BaseCommand):
    help = "Create and list third-party apps (OAuth 2.1 / OpenID Connect clients)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="register an app; prints its client secret once")
        create.add_argument("--name", required=True)
        create.add_argument(
            "--redirect-uri", action="append", required=True, help="exact HTTPS URI (repeatable)"
        )
        create.add_argument(
            "--permissions",
            nargs="*",
            default=[],
            help="permissions approved in review (basic ones need none)",
        )
        create.add_argument(
            "--purpose", action="append", default=[], metavar="PERM=TEXT", help="repeatable"
        )
        create.add_argument("--live", action="store_true", help="live instead of development")
        create.add_argument("--agreement-signed", action="store_true")
        create.add_argument("--description", default="")
        create.add_argument("--icon-url", default="")
        create.add_argument("--json", action="store_true", help="machine-readable output")
        listing = sub.add_parser("list", help="list apps")
        listing.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "create":
            self._create(options)
        else:
            self._list(options)

    def _create(self, options: dict[str, Any]) -> None:
        purposes = {}
        for item in options["purpose"]:
            perm, sep, text = item.partition("=")
            if not sep:
                raise CommandError(f"--purpose {item!r}: expected PERM=TEXT")
            purposes[perm.strip()] = text.strip()
        permissions = [p for chunk in options["permissions"] for p in chunk.split(",") if p]
        try:
            app, secret = do_create_application(
                name=options["name"],
                redirect_uris=options["redirect_uri"],
                approved_permissions=permissions,
                purposes=purposes,
                live=options["live"],
                agreement_signed=options["agreement_signed"],
                description=options["description"],
                icon_url=options["icon_url"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        out = {
            "id": app.pk,
            "name": app.name,
            "client_id": app.client_id,
            "client_secret": secret,
            "status": app.status,
            "redirect_uris": app.redirect_uris.split(),
            "approved_permissions": app.approved_permissions,
        }
        if options["json"]:
            self.stdout.write(json.dumps(out))
            return
        for key, value in out.items():
            self.stdout.write(f"{key}: {value}")
        self.stdout.write("The client secret is shown only now; store it safely.")

    def _list(self, options: dict[str, Any]) -> None:
        rows = [
            {
                "id": app.pk,
                "name": app.name,
                "client_id": app.client_id,
                "status": app.status,
                "approved_permissions": app.approved_permissions,
            }
            for app in Application.objects.order_by("pk")
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows))
            return
        for row in rows:
            perms = ",".join(row["approved_permissions"]) or "-"
            self.stdout.write(
                f"{row['id']}\t{row['client_id']}\t{row['status']}\t{row['name']}\t{perms}"
            )
