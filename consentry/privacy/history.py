"""What apps read about a person, from the disclosure ledger (read only).

The timeline reads the ledger's derived per-subject index (`SubjectDisclosure`, primary
key (subject, entry)), newest first, one page at a time: one range scan of that key for
the page plus one primary-key read of the page's call records. Filters narrow the scan:
app and field are columns of the index row; a date range becomes an entry-index range
(call records are appended in time order, so a binary search over their primary key
finds it in about log2(ledger size) point reads); the friend filter checks the call
record of each candidate row. bench/history_page.py measures it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Exists, F, OuterRef
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


def index_at(moment: datetime) -> int:
    """The first ledger index whose call record is at or after `moment` (the ledger's
    size when there is none): binary search over the primary key, since call records are
    appended in time order."""
    lo, hi = 0, ledger_size()
    while lo < hi:
        mid = (lo + hi) // 2
        created = CallRecord.objects.filter(index=mid).values_list("created_at", flat=True).first()
        if created is None or created >= moment:
            hi = mid
        else:
            lo = mid + 1
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
    if filters.friend_id is not None:
        qs = qs.filter(
            Exists(
                CallRecord.objects.filter(index=OuterRef("entry_index"), actor_id=filters.friend_id)
            )
        )
    hits = list(
        qs.order_by("-entry_index").values_list("entry_index", "app_id", "mask")[: limit + 1]
    )
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
    (the acting person was someone else), optionally only reads of one field bit."""
    catch_up_index()
    qs = SubjectDisclosure.objects.filter(subject_id=person_id)
    if field_bit is not None:
        qs = qs.annotate(b=F("mask").bitand(field_bit)).filter(b__gt=0)
    through = qs.filter(
        Exists(CallRecord.objects.filter(index=OuterRef("entry_index")).exclude(actor_id=person_id))
    )
    return {
        row["app_id"]: row["n"] for row in through.values("app_id").annotate(n=Count("entry_index"))
    }
