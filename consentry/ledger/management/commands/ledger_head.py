"""`consentry ledger head`: print a signed tree head for the ledger's current size."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from consentry.ledger.api import latest_signed_tree_head
from consentry.ledger.signing import public_key_pem


class Command(BaseCommand):
    help = (
        "Sign (if the ledger grew) and print the latest tree head as JSON, with the "
        "ledger's Ed25519 public key, so that it can be published or handed to an auditor."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        sth = latest_signed_tree_head()
        self.stdout.write(
            json.dumps(
                {
                    "tree_size": sth.tree_size,
                    "timestamp_ms": sth.timestamp_ms,
                    "root_hash": sth.root_hash.hex(),
                    "signature": sth.signature.hex(),
                    "public_key_pem": public_key_pem().decode(),
                },
                indent=2,
            )
        )
