"""`consentry lifecycle`: run the developer platform's lifecycle jobs once, now."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand

from consentry.developers.lifecycle import run_lifecycle


class Command(BaseCommand):
    help = (
        "Run the lifecycle jobs once: expire grants unused for 90 days (and their tokens), "
        "clear the tokens of apps unused for 90 days, send recertification reminders and "
        "lapse overdue apps, retry due callbacks. Workers run this every 10 minutes by "
        "themselves; use this from cron when no worker runs."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        self.stdout.write(json.dumps(asdict(run_lifecycle())))
