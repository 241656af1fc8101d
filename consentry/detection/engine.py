"""The online detector: per app, figures kept up to date on every Graph API call at a cost
that does not grow with the app's history (docs/detection.md).

Per call: the released subject ids go into a Roaring bitmap (`new = call - reached` is the
set of first-time subjects; pyroaring keeps both operations proportional to the call, not
to the bitmap), a few counters are bumped, the figures are derived and the rules
(consentry.detection.rules, pure) are checked. Only a firing writes to the database at
once (consentry.detection.actions.do_record_firing: throttle or suspend included).

Every `SYNC_SECONDS` or `SYNC_CALLS` calls an app's state is merged into its
`DetectorState` row (bitmaps OR-ed, counters added: several worker processes add up) and
a `FigureSample` is written for the charts. Distinct counts are exact in one process and
exact after each merge across processes.

With CONSENTRY_REDIS_URL set, every call also goes through consentry.detection.shared (one
round trip): the rules then read every process's figures as of this call, each the larger
of the shared value (counters exact, distinct counts HyperLogLog estimates) and this
process's exact one, and two processes crossing a threshold together record one firing.
Without Redis, or while it fails, the figures are this process's, as above.

Canary seed accounts (consentry.incidents) are never counted: their ids are removed from
every call before it is counted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from pyroaring import BitMap

from consentry.detection import rules as R
from consentry.detection.models import DetectorState, FigureSample, Firing, RuleSetting
from consentry.detection.shared import CallCounts, Shared, SharedFigures, from_settings

SYNC_SECONDS = 30.0
SYNC_CALLS = 500
INSTALLERS_REFRESH_SECONDS = 60.0
WORLD_REFRESH_SECONDS = 300.0
RULES_REFRESH_SECONDS = 30.0
COUNTERS = ("calls", "requested_fields", "withheld_fields", "person_lookups", "not_found")
_first = itemgetter(0)
_second = itemgetter(1)
_NO_SUBJECTS = BitMap()


@dataclass
class AppState:
    app_id: int
    subjects: BitMap = field(default_factory=BitMap)  # merged: every process, and this one
    actors: BitMap = field(default_factory=BitMap)
    delta_subjects: BitMap = field(default_factory=BitMap)  # this process, since the merge
    delta_actors: BitMap = field(default_factory=BitMap)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    deltas: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    hour: int = 0
    hour_new: int = 0
    hour_delta: int = 0
    day: int = 0
    day_new: int = 0
    day_delta: int = 0
    minute: int = 0
    minute_calls: int = 0
    fired: set[str] = field(default_factory=set)
    installers: int = 0
    installers_at: float = float("-inf")
    synced_at: float = 0.0
    calls_since_sync: int = 0
    rules: tuple[R.Rule, ...] = R.DEFAULT_RULES
    rules_at: float = float("-inf")
    # The shared state's epoch last seen (None: not yet), and whether the next database
    # merge re-adds the merged bitmaps to Redis (after a new epoch or an outage).
    epoch: str | None = None
    heal: bool = False
    outages_seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Detector:
    """This process's detector. One instance per process (`detector()`); thread-safe.
    `shared` (consentry.detection.shared) shares the figures with every other process."""

    def __init__(self, shared: SharedFigures | None = None) -> None:
        self.shared = shared
        self._apps: dict[int, AppState] = {}
        self._lock = threading.Lock()
        self._world = 0
        self._world_at = float("-inf")
        self._canaries = BitMap()
        self.enabled = True

    # --- observing calls ---------------------------------------------------------------

    def observe(
        self,
        app_id: int,
        actor_id: int,
        released: Sequence[tuple[int, int]],
        *,
        withheld_fields: int = 0,
        person_lookup: bool = False,
        not_found: bool = False,
        now: float | None = None,
    ) -> list[Firing]:
        """Count one Graph API call of `app_id` acting for `actor_id` that released
        `released` ((subject id, field mask) pairs) and withheld `withheld_fields` of the
        fields asked for; or, with `not_found`, a /v1/people/{id} lookup answered 404.
        Returns the firings it caused (already stored and acted on)."""
        if not self.enabled:
            return []
        now = time.time() if now is None else now
        state = self._state(app_id, now)
        self._world_size(now)  # also keeps the canaries' ids fresh
        with state.lock:
            counts = self._count(
                state, actor_id, released, withheld_fields, person_lookup, not_found, now
            )
            shared = self._share(state, counts, now) if self.shared is not None else None
            figures = self._figures(state, now, shared)
            decisions = R.evaluate(state.rules, figures, already_fired=state.fired)
            if any(d.rule.action == R.THROTTLE for d in decisions) and _throttled(app_id, now):
                decisions = [d for d in decisions if d.rule.action != R.THROTTLE]
            state.fired.update(d.rule.name for d in decisions)
            if decisions and self.shared is not None:
                # Another process that crossed the same threshold may have recorded it.
                won = self.shared.claim(app_id, [d.rule.name for d in decisions])
                if won is not None:
                    decisions = [d for d in decisions if d.rule.name in won]
            sync = (
                decisions
                or state.calls_since_sync >= SYNC_CALLS
                or now - state.synced_at >= SYNC_SECONDS
            )
        try:
            if sync:
                self.sync(app_id, now)
            if not decisions:
                return []
            from consentry.detection.actions import do_record_firings

            return do_record_firings(app_id, decisions, figures)
        except Exception:
            if self.shared is not None:  # a claim without its firing would block the rule
                for d in decisions:
                    self.shared.release(app_id, d.rule.name)
            raise

    def _count(
        self,
        state: AppState,
        actor_id: int,
        released: Sequence[tuple[int, int]],
        withheld_fields: int,
        person_lookup: bool,
        not_found: bool,
        now: float,
    ) -> CallCounts:
        """Count the call in this process's state; returns what it added (for Redis)."""
        deltas = state.deltas
        deltas["calls"] += 1
        state.calls_since_sync += 1
        minute = int(now // 60)
        if minute != state.minute:
            state.minute, state.minute_calls = minute, 0
        state.minute_calls += 1
        if person_lookup or not_found:
            deltas["person_lookups"] += 1
        if not_found:
            deltas["not_found"] += 1
            return CallCounts({"calls": 1, "person_lookups": 1, "not_found": 1}, None, _NO_SUBJECTS)
        new_actor = None
        if actor_id not in state.actors and actor_id not in self._canaries:
            state.actors.add(actor_id)
            state.delta_actors.add(actor_id)
            new_actor = actor_id
        hour, day = int(now // 3600), int(now // 86400)
        if hour != state.hour:
            state.hour, state.hour_new, state.hour_delta = hour, 0, 0
        if day != state.day:
            state.day, state.day_new, state.day_delta = day, 0, 0
        new = _NO_SUBJECTS
        if released:
            call = BitMap(map(_first, released))
            if self._canaries:
                call -= self._canaries
            new = call - state.subjects
            if new:
                n = len(new)
                state.subjects |= new
                state.delta_subjects |= new
                state.hour_new += n
                state.hour_delta += n
                state.day_new += n
                state.day_delta += n
            # Fields released about listed subjects (the id counts as a field asked for,
            # as in the API's meta.withheld_fields); one popcount per distinct mask (a
            # page's masks are most often all the same).
            masks = list(map(_second, released))
            if masks.count(masks[0]) == len(masks):
                given = masks[0].bit_count() * len(masks)
            else:
                given = sum(m.bit_count() * k for m, k in Counter(masks).items())
        else:
            given = 0
        deltas["requested_fields"] += given + withheld_fields
        deltas["withheld_fields"] += withheld_fields
        increments = {"calls": 1, "requested_fields": given + withheld_fields}
        if withheld_fields:
            increments["withheld_fields"] = withheld_fields
        if person_lookup:
            increments["person_lookups"] = 1
        return CallCounts(increments, new_actor, new)

    def _share(self, state: AppState, counts: CallCounts, now: float) -> Shared | None:
        """Add the call to the shared figures and read every process's back (one round
        trip). A process that finds a new epoch (it, or another, recreated the shared
        state after a flush or an expiry) heals it at its next merge; the one that
        recreated it first adds its own view of the app so far."""
        assert self.shared is not None
        shared = self.shared.count(state.app_id, counts, now)
        if shared is None or shared.epoch == state.epoch:
            return shared
        if shared.created:
            before = {
                k: state.totals[k] + state.deltas[k] - counts.increments.get(k, 0) for k in COUNTERS
            }
            self.shared.seed(state.app_id, before, state.subjects, state.actors)
        if shared.created or state.epoch is not None:
            state.heal = True
        state.epoch = shared.epoch
        return shared

    def _figures(self, state: AppState, now: float, shared: Shared | None = None) -> R.Figures:
        t, d = state.totals, state.deltas
        if now - state.installers_at >= INSTALLERS_REFRESH_SECONDS:
            state.installers = _count_installers(state.app_id)
            state.installers_at = now
        counts = {k: t[k] + d[k] for k in COUNTERS}
        subjects, actors = len(state.subjects), len(state.actors)
        hour_new, day_new, minute_calls = state.hour_new, state.day_new, state.minute_calls
        if shared is not None:
            # Each figure: the larger of every process's (shared) and this process's own
            # exact count. Neither counts a call twice, so the larger is nearer the truth;
            # after a flush the shared one restarts low and this process's carries on.
            counts = {k: max(v, shared.counters[k]) for k, v in counts.items()}
            subjects = max(subjects, shared.subjects)
            actors = max(actors, shared.actors)
            hour_new = max(hour_new, shared.hour_new)
            day_new = max(day_new, shared.day_new)
            minute_calls = max(minute_calls, shared.minute_calls)
        return R.figures_of(
            calls=counts["calls"],
            installers=max(state.installers, actors),
            subjects_reached=subjects,
            requested_fields=counts["requested_fields"],
            withheld_fields=counts["withheld_fields"],
            person_lookups=counts["person_lookups"],
            not_found=counts["not_found"],
            new_subjects_hour=hour_new,
            new_subjects_day=day_new,
            requests_minute=minute_calls,
            world=self._world_size(now),
        )

    def figures(self, app_id: int, now: float | None = None) -> R.Figures:
        """The app's figures now (merged with the stored state of every process, and with
        Redis the figures every process shares)."""
        now = time.time() if now is None else now
        state = self._state(app_id, now)
        shared = self.shared.read(app_id, now) if self.shared is not None else None
        with state.lock:
            return self._figures(state, now, shared)

    # --- state -------------------------------------------------------------------------

    def _state(self, app_id: int, now: float) -> AppState:
        state = self._apps.get(app_id)
        if state is None:
            with self._lock:
                state = self._apps.get(app_id)
                if state is None:
                    state = AppState(app_id=app_id, synced_at=now)
                    if self.shared is not None:
                        state.outages_seen = self.shared.outages
                    _load(state)
                    self._apps[app_id] = state
        if now - state.rules_at >= RULES_REFRESH_SECONDS:
            state.rules = rules_for_app(app_id)
            state.rules_at = now
        return state

    def _world_size(self, now: float) -> int:
        if now - self._world_at >= WORLD_REFRESH_SECONDS:
            from consentry.people.models import Person

            self.refresh_canaries()
            self._world = max(
                0, Person.objects.filter(is_active=True).count() - len(self._canaries)
            )
            self._world_at = now
        return self._world

    def refresh_canaries(self) -> None:
        """Reload the ids of canary seed accounts, which are never counted."""
        from consentry.incidents.models import CanaryAccount

        self._canaries = BitMap(CanaryAccount.objects.values_list("person_id", flat=True))

    def sync(self, app_id: int, now: float | None = None) -> None:
        """Merge this process's state for the app into its DetectorState row and write a
        FigureSample."""
        now = time.time() if now is None else now
        state = self._state(app_id, now)
        with state.lock:
            self._merge(state, now)
            if self.shared is not None:
                # Lift the shared counters to at least the merged totals (they miss what
                # was counted while Redis was down or before a flush) and, after a new
                # epoch or an outage, re-add the merged bitmaps.
                heal = state.heal or state.outages_seen != self.shared.outages
                outages = self.shared.outages
                done = self.shared.merged(
                    app_id,
                    state.totals,
                    state.subjects if heal else None,
                    state.actors if heal else None,
                )
                if done:
                    state.heal, state.outages_seen = False, outages

    def _merge(self, state: AppState, now: float) -> None:
        app_id = state.app_id
        with transaction.atomic():
            row = DetectorState.objects.select_for_update().filter(app_id=app_id).first()
            if row is None:
                DetectorState.objects.bulk_create(
                    [DetectorState(app_id=app_id)], ignore_conflicts=True
                )
                row = DetectorState.objects.select_for_update().get(app_id=app_id)
            stored_subjects = _bitmap(row.subjects) | state.delta_subjects
            stored_actors = _bitmap(row.actors) | state.delta_actors
            counters = dict(row.counters or {})
            for key in COUNTERS:
                counters[key] = int(counters.get(key, 0)) + state.deltas[key]
            hour, day = state.hour, state.day
            counters["hour_new"] = (
                int(counters.get("hour_new", 0)) if counters.get("hour") == hour else 0
            ) + state.hour_delta
            counters["day_new"] = (
                int(counters.get("day_new", 0)) if counters.get("day") == day else 0
            ) + state.day_delta
            counters["hour"], counters["day"] = hour, day
            row.subjects = stored_subjects.serialize()
            row.actors = stored_actors.serialize()
            row.counters = counters
            row.updated_at = timezone.now()
            row.save(update_fields=["subjects", "actors", "counters", "updated_at"])
            state.subjects = stored_subjects
            state.actors = stored_actors
            state.delta_subjects, state.delta_actors = BitMap(), BitMap()
            state.totals = {k: counters[k] for k in COUNTERS}
            state.deltas = dict.fromkeys(COUNTERS, 0)
            state.hour_new, state.day_new = counters["hour_new"], counters["day_new"]
            state.hour_delta = state.day_delta = 0
            state.synced_at, state.calls_since_sync = now, 0
            figures = self._figures(state, now)
            FigureSample.objects.create(app_id=app_id, figures=figures.as_dict())

    def sync_all(self) -> None:
        for app_id in list(self._apps):
            self.sync(app_id)

    def cleared(self, app_id: int, rule: str) -> None:
        """Staff cleared a firing of `rule`: it may fire again (from this process's next
        call on; other processes once they reload the app's state)."""
        if self.shared is not None:
            self.shared.release(app_id, rule)
        self.forget(app_id)

    def forget(self, app_id: int | None = None) -> None:
        """Drop this process's in-memory state (all apps, or one), e.g. after staff
        cleared a firing so that it may fire again, or between tests."""
        with self._lock:
            if app_id is None:
                self._apps.clear()
                self._world_at = float("-inf")
            else:
                self._apps.pop(app_id, None)


def _bitmap(blob: bytes | memoryview | None) -> BitMap:
    raw = bytes(blob or b"")
    return BitMap.deserialize(raw) if raw else BitMap()


def _load(state: AppState) -> None:
    row = DetectorState.objects.filter(app_id=state.app_id).first()
    fired_open = set(
        Firing.objects.filter(app_id=state.app_id, cleared_at__isnull=True).values_list(
            "rule", flat=True
        )
    )
    state.fired = fired_open
    if row is None:
        return
    c = row.counters or {}
    state.subjects = _bitmap(row.subjects)
    state.actors = _bitmap(row.actors)
    state.totals = {k: int(c.get(k, 0)) for k in COUNTERS}
    now = time.time()
    state.hour, state.day = int(now // 3600), int(now // 86400)
    state.hour_new = int(c.get("hour_new", 0)) if c.get("hour") == state.hour else 0
    state.day_new = int(c.get("day_new", 0)) if c.get("day") == state.day else 0


def _count_installers(app_id: int) -> int:
    """People with an active grant to the app (canaries excluded)."""
    from consentry.grants.models import Consent
    from consentry.incidents.models import CanaryAccount

    now = timezone.now()
    return (
        Consent.objects.filter(application_id=app_id, revoked_at__isnull=True, expires_at__gt=now)
        .exclude(person_id__in=CanaryAccount.objects.values("person_id"))
        .count()
    )


def _throttled(app_id: int, now: float) -> bool:
    from consentry.graph.limits import harvest_throttle

    return harvest_throttle(app_id, now) is not None


def rules_for_app(app_id: int) -> tuple[R.Rule, ...]:
    """The rules in force for an app: DEFAULT_RULES with the stored overrides."""
    overrides = [
        R.Override(
            rule=s.rule,
            app_id=s.app_id,
            enabled=s.enabled,
            when={k: float(v) for k, v in (s.when or {}).items()},
            throttle_seconds=s.throttle_seconds,
        )
        for s in RuleSetting.objects.filter(rule__in=R.RULE_NAMES)
        .filter(Q(app_id__isnull=True) | Q(app_id=app_id))
        .order_by("pk")
    ]
    return R.rules_with_overrides(R.DEFAULT_RULES, overrides, app_id)


_detector: Detector | None = None
_detector_lock = threading.Lock()


def detector() -> Detector:
    """This process's detector, sharing its figures through Redis when
    CONSENTRY_REDIS_URL is set."""
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                _detector = Detector(shared=from_settings())
    return _detector
