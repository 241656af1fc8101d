"""Export the world (everyone with an external id) in exactly the import format.

Lines are sorted by external id (Python code-point order, not the database collation,
which differs between SQLite and PostgreSQL), so two databases holding the same world
export byte-identical files: a generated world with the same seed, or a world imported
from an export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consentry.people.fields import Audience
from consentry.people.models import Post
from consentry.world.loader import friendship_pairs, world_people
from consentry.world.records import PersonRecord, PostRecord

FILES = ("people.jsonl", "friendships.jsonl", "posts.jsonl")
PERSON_VALUES = tuple(PersonRecord("x", "x", "x").columns())


@dataclass(frozen=True)
class ExportStats:
    people: int
    friendships: int
    posts: int


def write_world(directory: Path) -> ExportStats:
    """Write people.jsonl, friendships.jsonl and posts.jsonl into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = sorted(world_people().values("id", *PERSON_VALUES), key=lambda r: r["external_id"])
    with open(directory / "people.jsonl", "w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(PersonRecord.from_columns(row).to_json() + "\n")

    pks = np.array([row["id"] for row in rows], dtype=np.int64)  # in export order
    quoted = [json.dumps(row["external_id"], ensure_ascii=False) for row in rows]
    pairs = friendship_pairs()
    ranks = [_ranks(pks, pairs[:, 0]), _ranks(pks, pairs[:, 1])]
    lo, hi = np.minimum(ranks[0], ranks[1]), np.maximum(ranks[0], ranks[1])
    inside = lo >= 0
    lo, hi = lo[inside], hi[inside]
    order = np.lexsort((hi, lo))
    with open(directory / "friendships.jsonl", "w", encoding="utf-8", newline="\n") as out:
        for a, b in zip(lo[order].tolist(), hi[order].tolist(), strict=True):
            out.write(f'{{"person":{quoted[a]},"friend":{quoted[b]}}}\n')

    posts = [
        PostRecord(
            id=post["external_id"] or f"consentry-post-{post['pk']}",
            author=post["author__external_id"] or "",
            created_at=post["created_at"],
            message=post["message"],
            audience=Audience(post["audience"]),
        )
        for post in Post.objects.filter(author__external_id__isnull=False).values(
            "pk", "external_id", "author__external_id", "created_at", "message", "audience"
        )
    ]
    posts.sort(key=lambda p: p.id)
    with open(directory / "posts.jsonl", "w", encoding="utf-8", newline="\n") as out:
        for post in posts:
            out.write(post.to_json() + "\n")
    return ExportStats(len(rows), len(lo), len(posts))


def _ranks(pks: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in `pks` (export order), or -1 if it is not there."""
    if len(pks) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    by_pk = np.argsort(pks)
    sorted_pks = pks[by_pk]
    pos = np.searchsorted(sorted_pks, values).clip(0, len(pks) - 1)
    return np.where(sorted_pks[pos] == values, by_pk[pos], -1)
