"""`consentry ledger verify-proof FILE`: check a downloaded inclusion proof offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consentry.ledger import signing
from consentry.ledger.proof_file import verify_proof_file


class Command(BaseCommand):
    help = (
        "Check an inclusion proof JSON file (from the privacy center or a data export) "
        "without the database: recompute the entry's leaf hash, follow the audit path to the "
        "signed root and check the tree head's Ed25519 signature. The key is the ledger's own "
        "public key, or --public-key PEM (what `consentry ledger head` prints). Exits 1 on "
        "any mismatch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--public-key", type=Path, default=None)

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            raw = opts["file"].read_bytes()
            key = (
                opts["public_key"].read_bytes()
                if opts["public_key"] is not None
                else signing.public_key_pem()
            )
        except OSError as exc:
            raise CommandError(f"cannot read: {exc.strerror}") from exc
        check = verify_proof_file(raw, key)
        if not check.ok:
            raise CommandError(f"FAILED: {check.message}")
        self.stdout.write(check.message)
