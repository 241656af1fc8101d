"""Progress bars for the world commands: tqdm on a terminal, silence otherwise (logs
and CI output stay readable)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm


@contextmanager
def progress_bar(stdout: Any, desc: str, total: int | None, unit: str) -> Iterator[Any]:
    """Yield a callable taking a count of finished items, or None when not a terminal."""
    if not stdout.isatty():
        yield None
        return
    with tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False) as bar:
        yield bar.update
