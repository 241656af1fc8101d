"""The repository stands on its own: nothing in it points at files outside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Spelled in pieces so that this file does not match itself.
OUTSIDE = ("SPEC" + ".md", "../" + "shared", "/" + "work/")


def test_no_file_refers_to_anything_outside_the_repository() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    offenders = []
    for name in listed:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".mo", ".png", ".ico", ".woff2", ".sqlite3"}:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}: {needle}" for needle in OUTSIDE if needle in text]
    assert offenders == []


def test_the_documents_the_code_cites_exist() -> None:
    for name in ("rules.md", "ledger.md", "replay.md", "architecture.md"):
        assert (ROOT / "docs" / name).is_file()
