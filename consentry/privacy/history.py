"""What apps read about a person, from the disclosure ledger (read only).

The timeline reads the ledger's derived per-subject index (`SubjectDisclosure`, primary
key (subject, entry)), newest first, one page at a time: one range scan of that key for
the page plus one primary-key read of the page's call records. Filters narrow the scan:
app and field are columns of the index row; a date range becomes an entry-index range
(call records are appended in time order, so a 32-way search over their primary key
finds it in about five queries at 10 million entries); the friend filter checks the
call records of the person's rows in growing batches, by primary key.
bench/history_page.py measures it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F
from django.utils import timezone

from consentry.grants.permissions import RELEASE_BIT, mask_to_fields
from consentry.ledger.api import catch_up_index, ledger_size
from consentry.ledger.models import CallRecord, SubjectDisclosure

PAGE_SIZE = 50


@dataclass(frozen=True)
class HistoryFilter:
    app_id: int | None = None
    field: str | None = None  # a grants.permissions.RELEASE_FIELDS name
    friend_id: int | None = None  # the acting person (the person themselves for "you")
    since: datetime | None = None
    until: datetime | None = None  # exclusive


@dataclass(frozen=True)
class Read:
    """One ledger entry about the person: `app_id` read `fields` at `created_at`,
    acting for `actor_id` (the person themselves, or a friend)."""

    index: int
    created_at: datetime
    app_id: int
    actor_id: int
    fields: list[str]
    endpoint: str


@dataclass
class HistoryPage:
    reads: list[Read]
    next_before: int | None  # pass as `before` for the next (older) page
    app_ids: set[int] = field(default_factory=set)
    actor_ids: set[int] = field(default_factory=set)


def index_at(moment: datetime, fanout: int = 32) -> int:
    """The first ledger index whose call record is at or after `moment` (the ledger's
    size when there is none). Call records are appended in time order, so this is a
    search over the primary key: `fanout` probes per query, so about log_32(size)
    queries (five for 10 million entries) instead of one query per halving."""
    lo, hi = 0, ledger_size()
    # Invariant: every index below lo is before `moment`; hi is at or after it (or the end).
    while lo < hi:
        step = -(-(hi - lo) // fanout)  # ceiling: at most `fanout` probes
        probes = range(lo, hi, step)
        times = dict(
            CallRecord.objects.filter(index__in=list(probes)).values_list("index", "created_at")
        )
        new_lo, new_hi = lo, hi
        for probe in probes:
            created = times.get(probe)
            if created is None or created >= moment:
                new_hi = probe
                break
            new_lo = probe + 1
        if step == 1:  # every index in [lo, hi) was probed
            return new_hi
        lo, hi = new_lo, new_hi
    return lo


def history_page(
    person_id: int,
    filters: HistoryFilter,
    *,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> HistoryPage:
    """One page of what apps read about `person_id`, newest first."""
    catch_up_index()
    qs = SubjectDisclosure.objects.filter(subject_id=person_id)
    upper = before
    if filters.until is not None:
        end = index_at(filters.until)
        upper = end if upper is None else min(upper, end)
    if upper is not None:
        qs = qs.filter(entry_index__lt=upper)
    if filters.since is not None:
        qs = qs.filter(entry_index__gte=index_at(filters.since))
    if filters.app_id is not None:
        qs = qs.filter(app_id=filters.app_id)
    if filters.field is not None:
        qs = qs.annotate(has_field=F("mask").bitand(RELEASE_BIT[filters.field])).filter(
            has_field__gt=0
        )
    if filters.friend_id is None:
        hits = list(
            qs.order_by("-entry_index").values_list("entry_index", "app_id", "mask")[: limit + 1]
        )
    else:
        hits = _through_friend(qs, filters.friend_id, limit + 1)
    more = len(hits) > limit
    del hits[limit:]
    calls = {
        index: (created_at, actor_id, endpoint)
        for index, created_at, actor_id, endpoint in CallRecord.objects.filter(
            index__in=[h[0] for h in hits]
        ).values_list("index", "created_at", "actor_id", "endpoint")
    }
    reads = []
    for index, app_id, mask in hits:
        created_at, actor_id, endpoint = calls[index]
        reads.append(Read(index, created_at, app_id, actor_id, mask_to_fields(mask), endpoint))
    return HistoryPage(
        reads=reads,
        next_before=hits[-1][0] if more and hits else None,
        app_ids={r.app_id for r in reads},
        actor_ids={r.actor_id for r in reads},
    )


def _through_friend(qs: Any, friend_id: int, wanted: int) -> list[tuple[int, int, int]]:
    """The newest `wanted` rows of `qs` whose call was made acting for `friend_id`: the
    acting person is on the call record, so scan the person's rows newest first in
    growing batches and check each batch's call records by primary key (no index on the
    acting person is needed, and a frequent friend costs one or two batches)."""
    found: list[tuple[int, int, int]] = []
    before: int | None = None
    batch = 256
    while len(found) < wanted:
        page = qs if before is None else qs.filter(entry_index__lt=before)
        rows = list(
            page.order_by("-entry_index").values_list("entry_index", "app_id", "mask")[:batch]
        )
        if not rows:
            break
        theirs = set(
            CallRecord.objects.filter(
                index__in=[r[0] for r in rows], actor_id=friend_id
            ).values_list("index", flat=True)
        )
        found.extend(r for r in rows if r[0] in theirs)
        before = rows[-1][0]
        batch = min(batch * 4, 16_384)
    return found[:wanted]


def is_about(person_id: int, index: int) -> bool:
    """Whether ledger entry `index` released anything about `person_id`."""
    catch_up_index()
    return SubjectDisclosure.objects.filter(subject_id=person_id, entry_index=index).exists()


def entry_indexes_about(person_id: int) -> list[int]:
    """Every ledger entry about the person, oldest first (the export)."""
    catch_up_index()
    return list(
        SubjectDisclosure.objects.filter(subject_id=person_id)
        .order_by("entry_index")
        .values_list("entry_index", flat=True)
    )


@dataclass(frozen=True)
class RecentSummary:
    reads: int
    by_app: list[tuple[int, int]]  # (app id, reads), most first
    through: list[tuple[int, int]]  # (friend id, reads) of reads through friends


def recent_summary(person_id: int, days: int = 30, scan_limit: int = 5000) -> RecentSummary:
    """Reads of the person's data in the last `days` days, by app, and the friends
    through whom they happened (looked up in the newest `scan_limit` reads)."""
    catch_up_index()
    start = index_at(timezone.now() - timedelta(days=days))
    recent = SubjectDisclosure.objects.filter(subject_id=person_id, entry_index__gte=start)
    by_app = [
        (row["app_id"], row["n"])
        for row in recent.values("app_id").annotate(n=Count("entry_index")).order_by("-n")
    ]
    newest = list(
        recent.order_by("-entry_index").values_list("entry_index", flat=True)[:scan_limit]
    )
    actors: Counter[int] = Counter(
        CallRecord.objects.filter(index__in=newest)
        .exclude(actor_id=person_id)
        .values_list("actor_id", flat=True)
    )
    return RecentSummary(sum(n for _, n in by_app), by_app, actors.most_common())


def apps_through_friends(person_id: int, field_bit: int | None = None) -> dict[int, int]:
    """App id -> number of reads of the person's data that happened through a friend
    (the acting person was someone else), optionally only reads of one field bit. Walks
    the person's index rows in batches and reads their call records by primary key."""
    catch_up_index()
    qs = SubjectDisclosure.objects.filter(subject_id=person_id)
    if field_bit is not None:
        qs = qs.annotate(b=F("mask").bitand(field_bit)).filter(b__gt=0)
    counts: Counter[int] = Counter()
    after = -1
    while True:
        rows = list(
            qs.filter(entry_index__gt=after)
            .order_by("entry_index")
            .values_list("entry_index", "app_id")[:16_384]
        )
        if not rows:
            return dict(counts)
        through = set(
            CallRecord.objects.filter(index__in=[r[0] for r in rows])
            .exclude(actor_id=person_id)
            .values_list("index", flat=True)
        )
        counts.update(app for index, app in rows if index in through)
        after = rows[-1][0]
