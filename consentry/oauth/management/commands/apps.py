"""`consentry apps create|list|review`: the operator's side of app registration (the
developer console at /developers/ is the developers' side; both follow the same rules).

    consentry apps create --name Calendar --redirect-uri https://cal.example/cb \\
        --permissions user_birthday --purpose "user_birthday=Shows birthdays" --live --json
    consentry apps review Calendar --approve user_birthday --reason "Calendar use only"
    consentry apps review Calendar --reject user_posts --reason "No need shown"

Requested permissions that need review stay pending until `apps review` (or a staff member
at /staff/reviews/) approves them. The client secret is printed once and stored only
hashed.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from consentry.developers.actions import (
    Declaration,
    DeveloperError,
    do_decide_review,
    do_register_app,
)
from consentry.developers.models import PermissionDeclaration
from consentry.grants.permissions import PERMISSIONS
from consentry.oauth.models import Application


class Command(BaseCommand):
    help = "Create, list and review third-party apps (OAuth 2.1 / OpenID Connect clients)."

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
            help="permissions the app requests; those needing review stay pending until "
            "`apps review` approves them",
        )
        create.add_argument("--retention-days", type=int, default=365, metavar="DAYS")
        create.add_argument(
            "--purpose", action="append", default=[], metavar="PERM=TEXT", help="repeatable"
        )
        create.add_argument("--live", action="store_true", help="live instead of development")
        create.add_argument(
            "--agreement-signed-by",
            default="",
            metavar="NAME",
            help="sign the data-use agreement (needed for user_likes and user_posts) as NAME",
        )
        create.add_argument("--description", default="")
        create.add_argument("--icon-url", default="")
        create.add_argument("--json", action="store_true", help="machine-readable output")
        listing = sub.add_parser("list", help="list apps")
        listing.add_argument("--json", action="store_true")
        review = sub.add_parser("review", help="approve or reject requested permissions")
        review.add_argument("app", metavar="APP", help="app id, client id or exact name")
        review.add_argument("--approve", nargs="+", default=[], metavar="PERM")
        review.add_argument("--reject", nargs="+", default=[], metavar="PERM")
        review.add_argument("--reason", default="", help="shown to the developer")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "create":
            self._create(options)
        elif options["action"] == "review":
            self._review(options)
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
        unknown = sorted((set(permissions) | set(purposes)) - PERMISSIONS.keys())
        if unknown:
            raise CommandError(f"unknown permissions: {', '.join(unknown)}")
        declared = [
            Declaration(p, purposes.get(p, ""), options["retention_days"])
            for p in dict.fromkeys(permissions)
        ]
        try:
            app, secret = do_register_app(
                owner=None,
                name=options["name"],
                redirect_uris=options["redirect_uri"],
                live=options["live"],
                description=options["description"],
                icon_url=options["icon_url"],
                declarations=declared,
                signer_name=options["agreement_signed_by"],
            )
        except (ValueError, DeveloperError) as error:
            raise CommandError(str(error)) from error
        app.refresh_from_db()
        out = {
            "id": app.pk,
            "name": app.name,
            "client_id": app.client_id,
            "client_secret": secret,
            "status": app.status,
            "redirect_uris": app.redirect_uris.split(),
            "approved_permissions": app.approved_permissions,
            "pending_permissions": _pending(app),
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
                "pending_permissions": _pending(app),
            }
            for app in Application.objects.order_by("pk")
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows))
            return
        for row in rows:
            perms = ",".join(row["approved_permissions"]) or "-"
            pending = ",".join(row["pending_permissions"]) or "-"
            self.stdout.write(
                f"{row['id']}\t{row['client_id']}\t{row['status']}\t{row['name']}\t{perms}"
                f"\tpending:{pending}"
            )

    def _review(self, options: dict[str, Any]) -> None:
        app = _find_app(options["app"])
        try:
            decisions = do_decide_review(
                app,
                None,
                approve=options["approve"],
                reject=options["reject"],
                reason=options["reason"],
            )
        except DeveloperError as error:
            raise CommandError(str(error)) from error
        for decision in decisions:
            verdict = "approved" if decision.approved else "rejected"
            self.stdout.write(f"{decision.permission}: {verdict}")
        app.refresh_from_db()
        self.stdout.write(f"approved permissions: {', '.join(app.approved_permissions) or '-'}")


def _find_app(key: str) -> Application:
    query = Application.objects.filter(client_id=key[:200]) | Application.objects.filter(
        name=key[:255]
    )
    if key.isdigit():
        query = query | Application.objects.filter(pk=int(key))
    apps = list(query.distinct()[:2])
    if len(apps) != 1:
        raise CommandError(f"no single app matches {key!r} (give its id or client id)")
    return apps[0]


def _pending(app: Application) -> list[str]:
    return sorted(
        PermissionDeclaration.objects.filter(application=app, status="pending").values_list(
            "permission", flat=True
        )
    )
