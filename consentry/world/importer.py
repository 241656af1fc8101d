"""Bulk import of the operator's own data (docs/rules.md "Data model": "Operators bring their
own data through a bulk import"), in the JSON Lines format of consentry.world.records.

Contract of `do_import_file`:
- the whole file is validated before anything is written; any bad record aborts the file
  with `FILE:LINE: reason` errors and the database stays exactly as it was (one
  transaction per file);
- it is idempotent by external id: people and posts are created, updated to match the
  record, or left alone when already equal; friendships already present are skipped;
- the friendship cap is the database's (people/migrations/0002_friendship_triggers.py);
  we check it first only to name the line that would cross it.

Imported people get an unusable password: they sign in after a password reset the
operator arranges, never with a password that travelled in an import file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction

from consentry.people.fields import MAX_FRIENDS
from consentry.people.models import Person, Post
from consentry.world import loader
from consentry.world.records import (
    KINDS,
    PARSERS,
    FriendshipRecord,
    PersonRecord,
    PostRecord,
    Record,
    RecordError,
    kind_for_path,
)

MAX_REPORTED = 20  # errors listed per file; the rest are counted
CHUNK = 500
# The longest line read: a person with MAX_LIKES likes of MAX_TEXT characters fits.
MAX_LINE_BYTES = 4 << 20  # ids per IN (...) query: well under every database's parameter limit
T = TypeVar("T")
Progress = Callable[[int], object]


class ImportFailed(Exception):
    """The file was not imported; `errors` are `FILE:LINE: reason` lines."""

    def __init__(self, errors: Sequence[str]) -> None:
        shown = list(errors[:MAX_REPORTED])
        if len(errors) > MAX_REPORTED:
            shown.append(f"... and {len(errors) - MAX_REPORTED} more errors")
        super().__init__("\n".join(shown))
        self.errors = list(errors)


@dataclass(frozen=True)
class ImportResult:
    path: Path
    kind: str
    created: int
    updated: int
    unchanged: int

    def summary(self) -> str:
        return (
            f"{self.path}: {self.kind}: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged"
        )


Numbered = list[tuple[int, T]]


def do_import_file(
    path: Path, kind: str | None = None, progress: Progress | None = None
) -> ImportResult:
    """Import one JSON Lines file of `kind` (default: from its name); see module doc.
    Raises ImportFailed, having written nothing, if any record is bad."""
    kind = kind or kind_for_path(path)
    if kind not in KINDS:
        raise ImportFailed(
            [f"{path}: cannot tell what the file holds: name it people*.jsonl, "
             "friendships*.jsonl or posts*.jsonl, or pass --kind"]
        )  # fmt: skip
    records = read_records(path, kind, progress)
    try:
        with transaction.atomic(durable=True):
            if kind == "people":
                return _import_people(path, records)  # type: ignore[arg-type]
            if kind == "friendships":
                return _import_friendships(path, records)  # type: ignore[arg-type]
            return _import_posts(path, records)  # type: ignore[arg-type]
    except IntegrityError as exc:
        # What the checks above cannot foresee (two people swapping emails, a concurrent
        # writer): the database's constraints still hold and the file is rolled back.
        raise ImportFailed([f"{path}: the database refused the import: {exc}"]) from exc


def read_records(path: Path, kind: str, progress: Progress | None = None) -> Numbered[Record]:
    """Parse every line (blank lines are allowed) and check for duplicates within the
    file; raises ImportFailed listing the bad lines."""
    parse = PARSERS[kind]
    records: Numbered[Record] = []
    errors: list[tuple[int, str]] = []
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below; lines decoded one by one)
    except OSError as exc:
        raise ImportFailed([f"{path}: cannot read: {exc.strerror}"]) from None
    with handle:
        for lineno, raw in enumerate(_lines(handle), 1):
            if progress and lineno % 10_000 == 0:
                progress(10_000)
            if raw is None:
                errors.append((lineno, f"line longer than {MAX_LINE_BYTES:,} bytes"))
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                errors.append((lineno, "not UTF-8 text"))
                continue
            if not line.strip():
                continue
            try:
                records.append((lineno, parse(line)))
            except RecordError as exc:
                errors.append((lineno, str(exc)))
    errors.extend(_duplicates(records))
    if errors:
        raise ImportFailed([f"{path}:{lineno}: {reason}" for lineno, reason in sorted(errors)])
    return records


def _lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """The file's lines, each at most MAX_LINE_BYTES long; None stands for a longer line,
    which is skipped without ever being held in memory whole."""
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):  # skip the rest of the long line
            line = handle.readline(1 << 20)
        yield None


def _duplicates(records: Numbered[Record]) -> Iterator[tuple[int, str]]:
    seen: dict[Any, int] = {}
    for lineno, record in records:
        keys: list[tuple[str, Any]]
        if isinstance(record, PersonRecord):
            keys = [("id", record.id), ("email", record.email)]
        elif isinstance(record, PostRecord):
            keys = [("id", record.id)]
        else:
            keys = [("friendship", frozenset((record.person, record.friend)))]
        for key in keys:
            first = seen.setdefault(key, lineno)
            if first != lineno:
                what = "friendship" if key[0] == "friendship" else f"{key[0]} {key[1]!r}"
                yield lineno, f"duplicate {what} (first on line {first})"


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _pks(external_ids: Iterable[str]) -> dict[str, int]:
    ids = sorted(set(external_ids))
    found: dict[str, int] = {}
    for chunk in _chunks(ids):
        rows = Person.objects.filter(external_id__in=chunk).values_list("external_id", "id")
        found.update((ext, pk) for ext, pk in rows if ext is not None)
    return found


def _import_people(path: Path, records: Numbered[PersonRecord]) -> ImportResult:
    fields = list(PersonRecord("x", "x", "x").columns())
    existing: dict[str, dict[str, Any]] = {}
    owners: dict[str, str | None] = {}
    ids = [r.id for _, r in records]
    emails = [r.email for _, r in records]
    for chunk in _chunks(ids):
        for row in Person.objects.filter(external_id__in=chunk).values("id", *fields):
            existing[row["external_id"]] = row
    for chunk in _chunks(emails):
        owners.update(Person.objects.filter(email__in=chunk).values_list("email", "external_id"))
    errors = [
        f"{path}:{lineno}: email {r.email!r} already belongs to another person"
        for lineno, r in records
        if r.email in owners and owners[r.email] != r.id
    ]
    if errors:
        raise ImportFailed(errors)
    new = [r for _, r in records if r.id not in existing]
    changed = []
    for _, r in records:
        row = existing.get(r.id)
        if row is not None:
            wanted = r.columns()
            if any(row[f] != wanted[f] for f in fields):
                changed.append(Person(pk=row["id"], **wanted))
    loader.insert_people(new, lambda: make_password(None))
    Person.objects.bulk_update(changed, fields, batch_size=CHUNK)
    return ImportResult(
        path, "people", len(new), len(changed), len(records) - len(new) - len(changed)
    )


def _import_friendships(path: Path, records: Numbered[FriendshipRecord]) -> ImportResult:
    pk_of = _pks(x for _, r in records for x in (r.person, r.friend))
    errors = [
        f"{path}:{lineno}: unknown person {x!r}"
        for lineno, r in records
        for x in (r.person, r.friend)
        if x not in pk_of
    ]
    if errors:
        raise ImportFailed(errors)
    a = np.array([pk_of[r.person] for _, r in records], dtype=np.int64)
    b = np.array([pk_of[r.friend] for _, r in records], dtype=np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    present = loader.friendship_pairs()
    width = int(max(hi.max(initial=0), present.max(initial=0))) + 1
    is_new = ~np.isin(lo * width + hi, present[:, 0] * width + present[:, 1])
    new_lines = [records[i][0] for i in np.flatnonzero(is_new).tolist()]
    lo, hi = lo[is_new], hi[is_new]

    # Name the first line that would take someone past the cap; the database would
    # refuse it anyway, but only as "the whole batch failed".
    involved = sorted(set(lo.tolist()) | set(hi.tolist()))
    count: Counter[int] = Counter()
    external: dict[int, str | None] = {}
    for chunk in _chunks(involved):
        for pk, ext, friends in Person.objects.filter(pk__in=chunk).values_list(
            "id", "external_id", "friend_count"
        ):
            count[pk], external[pk] = friends, ext
    errors = []
    for lineno, x, y in zip(new_lines, lo.tolist(), hi.tolist(), strict=True):
        for pk in (x, y):
            count[pk] += 1
            if count[pk] == MAX_FRIENDS + 1:
                errors.append(
                    f"{path}:{lineno}: friendship cap of {MAX_FRIENDS} reached for {external[pk]!r}"
                )
    if errors:
        raise ImportFailed(errors)
    loader.insert_friendships(lo, hi)
    return ImportResult(path, "friendships", len(lo), 0, len(records) - len(lo))


def _import_posts(path: Path, records: Numbered[PostRecord]) -> ImportResult:
    pk_of = _pks(r.author for _, r in records)
    errors = [
        f"{path}:{lineno}: unknown author {r.author!r}"
        for lineno, r in records
        if r.author not in pk_of
    ]
    if errors:
        raise ImportFailed(errors)
    fields = ["author_id", "created_at", "message", "audience"]
    existing: dict[str, dict[str, Any]] = {}
    ids = [r.id for _, r in records]
    for chunk in _chunks(ids):
        for row in Post.objects.filter(external_id__in=chunk).values("id", "external_id", *fields):
            existing[row["external_id"]] = row
    new = [r for _, r in records if r.id not in existing]
    changed = []
    for _, r in records:
        row = existing.get(r.id)
        if row is None:
            continue
        wanted = {
            "author_id": pk_of[r.author],
            "created_at": r.created_at,
            "message": r.message,
            "audience": r.audience.value,
        }
        if any(row[f] != wanted[f] for f in fields):
            changed.append(Post(pk=row["id"], external_id=r.id, **wanted))
    loader.insert_posts(new, pk_of)
    Post.objects.bulk_update(changed, fields, batch_size=CHUNK)
    return ImportResult(
        path, "posts", len(new), len(changed), len(records) - len(new) - len(changed)
    )


def import_paths(paths: Sequence[Path]) -> list[Path]:
    """Expand directories to their people, friendships and posts files, in that order
    (friendships and posts refer to people by id)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            for name in ("people.jsonl", "friendships.jsonl", "posts.jsonl"):
                if (path / name).exists():
                    files.append(path / name)
        else:
            files.append(path)
    return files
