"""Run the replay under one policy, in the current database.

    result = run_policy(Policy.CONSENTRY, Params(people=20_000), progress=print)

The database must hold a generated world and nothing of a previous replay. The runner
registers the apps, (for the opt-in policy) sets the people's friend-sharing opt-ins, and
then plays the scenario's events in time order on a simulated clock: every install is the
real OAuth flow and every read a real Graph API call (consentry.replay.agent). Afterwards
the figures are read back from the ledger and the world (consentry.replay.figures).
"""

from __future__ import annotations

import enum
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from consentry.grants.models import FriendShareOptIn
from consentry.oauth.models import Application, AppStatus
from consentry.people.fields import FIELD_BIT
from consentry.people.models import Person
from consentry.replay import scenario
from consentry.replay.agent import AppAgent, Site
from consentry.replay.clock import SimulatedClock, simulated_time
from consentry.replay.scenario import APP_BY_KEY, APPS, QUIZ, AppSpec, Event, Params
from consentry.world.loader import world_people

DEVELOPER_DOMAIN = "developers.demo.invalid"


class Policy(enum.StrEnum):
    LEGACY = "legacy"
    CONSENTRY = "consentry"
    OPT_IN = "consentry_optin"

    @property
    def heading(self) -> str:
        return {
            Policy.LEGACY: "Legacy v1.0 (2014)",
            Policy.CONSENTRY: "Consentry",
            Policy.OPT_IN: "Consentry + opt-in",
        }[self]


Progress = Callable[[str, int, int], object]  # (stage, done, total)


@dataclass
class RunStats:
    """What the replay itself counted while it ran (the figures come from the ledger)."""

    started: str = ""
    ended: str = ""
    installs: dict[str, int] = field(default_factory=dict)
    refused_installs: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    probes: int = 0
    probes_found: int = 0
    quiz_install_days: list[float] = field(default_factory=list)
    seconds: float = 0.0
    app_ids: dict[str, int] = field(default_factory=dict)
    # Staff's ban of the quiz once detection suspended it (Consentry's policies only):
    # real seconds from the ban until every affected person had their notice.
    ban_notify_seconds: float | None = None


def simulation_start(days: int, now: datetime | None = None) -> datetime:
    """The replay ends before today's midnight (UTC): the served site then shows grants
    and reads of the last `days` days, as if the quiz had just happened."""
    now = now or datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days + 1)


def developer_email(spec: AppSpec) -> str:
    return f"{spec.key}@{DEVELOPER_DOMAIN}"


def do_register_replay_apps(password_hash: str) -> dict[str, Application]:
    """The scenario's apps, live and approved for what they ask (the quiz passed review in
    2014, too), each owned by a developer account. Public clients (consentry.replay.agent)."""
    apps: dict[str, Application] = {}
    with transaction.atomic():
        for spec in APPS:
            developer, _ = Person.objects.get_or_create(
                email=developer_email(spec),
                defaults={"name": f"{spec.name} developer", "password": password_hash},
            )
            app = Application.objects.create(
                name=spec.name,
                user=developer,
                client_type=Application.CLIENT_PUBLIC,
                authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                redirect_uris=spec.redirect_uri,
                post_logout_redirect_uris=spec.redirect_uri,
                client_secret="",
                hash_client_secret=False,
                algorithm=Application.RS256_ALGORITHM,
                status=AppStatus.LIVE,
                approved_permissions=sorted(spec.review_permissions),
                purposes=spec.purposes,
                agreement_signed_at=timezone.now(),
                description=spec.description,
            )
            app.members.add(developer)
            apps[spec.key] = app
    return apps


def do_set_opt_ins(opt_ins: dict[int, tuple[str, ...]]) -> int:
    """Set the world's friend-sharing opt-ins to exactly `opt_ins` (person -> fields).

    The world generator turns the opt-in on for a few people to exercise it; the replay
    starts every policy from the product's default instead (nobody shares through
    friends) and, for the opt-in policy, sets the scenario's opt-ins as the people's own
    settings: the mask the release rule reads plus the audit row a person's change leaves.
    """
    by_mask: dict[int, list[int]] = {}
    for person, fields in opt_ins.items():
        mask = 0
        for name in fields:
            mask |= FIELD_BIT[name]
        by_mask.setdefault(mask, []).append(person)
    now = timezone.now()
    with transaction.atomic():
        Person.objects.filter(friend_share_mask__gt=0).update(friend_share_mask=0)
        for mask, people in by_mask.items():
            for start in range(0, len(people), 500):
                Person.objects.filter(pk__in=people[start : start + 500]).update(
                    friend_share_mask=mask
                )
        FriendShareOptIn.objects.bulk_create(
            [
                FriendShareOptIn(person_id=p, field=f, enabled=True, changed_at=now)
                for p, fields in opt_ins.items()
                for f in fields
            ],
            batch_size=2000,
        )
    return len(opt_ins)


@contextmanager
def _quiet_request_log() -> Iterator[None]:
    """The quiz's probes are meant to fail: thousands of expected 404s are not news."""
    # Nor is a line per request in the JSON request log (consentry.ops).
    logs = [logging.getLogger(name) for name in ("django.request", "consentry.request")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(logs, levels, strict=True):
            log.setLevel(level)


@contextmanager
def _detection_for(policy: Policy) -> Iterator[None]:
    """The 2014 platform had no harvest detection: the legacy comparison runs without it,
    Consentry's policies with the default rules (consentry.detection.rules)."""
    from consentry.detection.engine import detector

    engine = detector()
    engine.forget()
    was = engine.enabled
    engine.enabled = policy is not Policy.LEGACY
    try:
        yield
    finally:
        engine.enabled = was


def _ban_if_suspended(app: Application, stats: RunStats) -> None:
    """What staff do when detection suspended the quiz: ban it in one action (tokens and
    grants revoked, the affected set taken from the ledger, every affected person
    notified). Notices are written here, in process, and timed."""
    from consentry.incidents.actions import do_ban_app
    from consentry.incidents.tasks import notify_incident

    app.refresh_from_db(fields=["status"])
    if app.status != AppStatus.SUSPENDED:
        return
    started = time.perf_counter()
    incident = do_ban_app(app, staff_id=None, reason="replay: harvest detected and suspended")
    notify_incident.call(incident.pk)
    stats.ban_notify_seconds = round(time.perf_counter() - started, 2)


@contextmanager
def _rule_for(policy: Policy) -> Iterator[None]:
    if policy is Policy.LEGACY:
        from consentry.replay.legacy import legacy_release_rule

        with legacy_release_rule():
            yield
    else:
        yield


class Replay:
    """Plays the events of one policy run."""

    def __init__(self, policy: Policy, params: Params, clock: SimulatedClock) -> None:
        self.policy = policy
        self.params = params
        self.clock = clock
        self.stats = RunStats()
        self.agents: dict[str, AppAgent] = {}
        self.quiz_seen: list[str] = []  # person ids the quiz learnt from friend lists
        self._probe_rng = secrets.SystemRandom()

    def _count(self, app: str, status: int) -> None:
        self.stats.calls[app] = self.stats.calls.get(app, 0) + 1
        by = self.stats.statuses.setdefault(app, {})
        by[str(status)] = by.get(str(status), 0) + 1

    def get(self, app: str, person: int, path: str, **params: Any) -> tuple[int, Any]:
        self.clock.tick(2)
        status, body = self.agents[app].get(person, path, **params)
        self._count(app, status)
        return status, body

    def friends(self, app: str, person: int, fields: str) -> list[dict[str, Any]]:
        """Every page of /v1/me/friends."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"fields": fields, "limit": 5000}
            if after:
                params["after"] = after
            status, body = self.get(app, person, "/v1/me/friends", **params)
            if status != 200:
                return found
            found += body["data"]
            after = body["paging"]["next"]
            if not after:
                return found

    def play(self, event: Event) -> None:
        self.clock.advance_to(self.clock.start + timedelta(seconds=event.at))
        spec = APP_BY_KEY[event.app]
        if event.kind == "install":
            self.install(spec, event.person)
        elif event.kind == "sync":
            self.friends(spec.key, event.person, scenario.FRIEND_FIELDS_CALENDAR)
        elif event.kind == "use":
            self.get(spec.key, event.person, "/v1/me")

    def install(self, spec: AppSpec, person_id: int) -> None:
        person = Person.objects.get(pk=person_id)
        installed = self.agents[spec.key].install(person, spec.scopes)
        self.clock.tick(20)
        if installed is None:
            self.stats.refused_installs[spec.key] = self.stats.refused_installs.get(spec.key, 0) + 1
            return
        self.stats.installs[spec.key] = self.stats.installs.get(spec.key, 0) + 1
        if spec.key == scenario.CALENDAR.key:
            self.get(spec.key, person_id, "/v1/me", fields=scenario.FRIEND_FIELDS_CALENDAR)
            self.friends(spec.key, person_id, scenario.FRIEND_FIELDS_CALENDAR)
        elif spec.key == QUIZ.key:
            self.stats.quiz_install_days.append(round(self.clock.day(), 3))
            self.harvest(person_id)
        else:
            self.get(spec.key, person_id, "/v1/me")

    def harvest(self, person_id: int) -> None:
        """The quiz: everything about the installer, every friend, then probing ids."""
        status, me = self.get(QUIZ.key, person_id, "/v1/me", fields=scenario.EVERY_FIELD)
        self.get(QUIZ.key, person_id, "/v1/me/posts", limit=100)
        friends = self.friends(QUIZ.key, person_id, scenario.EVERY_FIELD)
        own = {f["id"] for f in friends}
        if status == 200:
            own.add(me["data"]["id"])
        earlier = [i for i in self.quiz_seen if i not in own]
        guesses = self._probe_rng.sample(earlier, min(len(earlier), scenario.QUIZ_PROBES // 2))
        while len(guesses) < scenario.QUIZ_PROBES:
            guesses.append(secrets.token_urlsafe(16))
        for guess in guesses:
            status, _ = self.get(QUIZ.key, person_id, f"/v1/people/{guess}", fields="id,name")
            self.stats.probes += 1
            self.stats.probes_found += status == 200
        self.quiz_seen.extend(own)


def run_policy(policy: Policy, params: Params, progress: Progress | None = None) -> RunStats:
    """Play the whole scenario under `policy` (module docstring)."""
    started = time.perf_counter()
    people = list(world_people().order_by("pk").values_list("pk", flat=True))
    if not people:
        raise RuntimeError("the database holds no world: generate one first")
    password_hash = world_people().values_list("password", flat=True).first() or ""
    events = scenario.schedule(people, params)
    start = simulation_start(params.days)
    with ExitStack() as stack:
        clock = stack.enter_context(simulated_time(start))
        stack.enter_context(_rule_for(policy))
        stack.enter_context(_detection_for(policy))
        stack.enter_context(_quiet_request_log())
        apps = do_register_replay_apps(password_hash)
        do_set_opt_ins(scenario.opt_ins(people, params.seed) if policy is Policy.OPT_IN else {})
        replay = Replay(policy, params, clock)
        site = Site()
        replay.agents = {key: AppAgent(app, site) for key, app in apps.items()}
        replay.stats.app_ids = {key: app.pk for key, app in apps.items()}
        replay.stats.started = start.isoformat()
        total = len(events)
        every = max(1, total // 200)
        for done, event in enumerate(events, start=1):
            replay.play(event)
            if progress is not None and (done % every == 0 or done == total):
                progress("events", done, total)
        if policy is not Policy.LEGACY:
            _ban_if_suspended(apps[QUIZ.key], replay.stats)
        replay.stats.ended = clock.now().isoformat()
    replay.stats.seconds = round(time.perf_counter() - started, 2)
    return replay.stats
