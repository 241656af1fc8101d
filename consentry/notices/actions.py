"""Sending notices: one bulk insert, then email in the background (after commit)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from consentry.notices.models import Notice

# Rows per INSERT: well under SQLite's variable limit with Notice's 8 columns.
BATCH = 2000


@dataclass(frozen=True)
class NoticeDraft:
    person_id: int
    kind: str
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)


def do_send_notices(drafts: Iterable[NoticeDraft], *, email: bool = True) -> int:
    """Insert the notices in batches inside the caller's transaction (or one of our own)
    and, once committed, queue their email. Returns how many were written."""
    now = timezone.now()
    written = 0
    first_id: int | None = None
    with transaction.atomic():
        batch: list[Notice] = []
        for draft in drafts:
            batch.append(
                Notice(
                    person_id=draft.person_id,
                    kind=draft.kind,
                    title=draft.title,
                    body=draft.body,
                    data=draft.data,
                    created_at=now,
                )
            )
            if len(batch) >= BATCH:
                written += _insert(batch)
                batch = []
        if batch:
            written += _insert(batch)
        if written:
            first_id = (
                Notice.objects.filter(created_at=now).order_by("id").values_list("id", flat=True)
            ).first()
    if email and written and first_id is not None:
        from consentry.notices.tasks import email_notices

        start = first_id
        transaction.on_commit(
            lambda: email_notices.enqueue(created_at=now.isoformat(), min_id=start)
        )
    return written


def _insert(batch: list[Notice]) -> int:
    Notice.objects.bulk_create(batch, batch_size=BATCH)
    return len(batch)


def do_mark_notices_read(person_id: int, notice_ids: Iterable[int] | None = None) -> int:
    """Mark a person's notices read (all unread ones when no ids are given)."""
    rows = Notice.objects.filter(person_id=person_id, read_at__isnull=True)
    if notice_ids is not None:
        rows = rows.filter(id__in=list(notice_ids))
    return rows.update(read_at=timezone.now())
