"""The `consentry` command: Django's management commands under the product's name, so
operators never need manage.py. `consentry world generate` is the same as
`consentry world_generate`; `consentry ledger verify` as `consentry ledger_verify`;
`consentry ledger verify-proof` as `consentry ledger_verify_proof`."""

from __future__ import annotations

import os
import sys

# Two-word commands named in docs/rules.md, mapped to their management command.
GROUPS = {"world", "ledger", "apps", "bench", "staff"}
# Groups that are one command with their own subcommands or arguments.
KEEP = {"apps", "bench"}


def translate(argv: list[str]) -> list[str]:
    """Turn `consentry world generate ...` into `world_generate ...`.

    `apps` keeps its own subcommands (`apps create`, `apps list`) inside one command, and
    `bench NAME` runs bench/NAME.py.
    """
    if len(argv) >= 2 and argv[0] in GROUPS - KEEP and not argv[1].startswith("-"):
        return [f"{argv[0]}_{argv[1].replace('-', '_')}", *argv[2:]]
    return argv


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
    from django.core.management import execute_from_command_line

    args = translate(list(sys.argv[1:] if argv is None else argv))
    execute_from_command_line(["consentry", *args])


if __name__ == "__main__":
    main()
