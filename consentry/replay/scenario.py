"""The Cambridge Analytica replay's scenario: who installs which app on which simulated day
and what each app then asks for. Pure and deterministic: the same world, seed and
parameters give the same events, under every policy.

The apps (docs/replay.md explains the choices):

- Birthday Calendar, the legitimate use of friends' data: asks for the person's and their
  friends' birthdays; installed by `calendar_share` of people at random over the replay,
  syncs friends' birthdays on install and every `CALENDAR_SYNC_DAYS` after.
- Personality Quiz ("thisisyourdigitallife"): installed by `quiz_share` of people (about
  1%, as 270,000 of Facebook's users were in 2014), in a viral wave; on install it pulls
  everything it can about the installer (profile, likes, posts) and about every friend,
  then probes `QUIZ_PROBES` person ids: ids its other installers' friend lists revealed
  (trying to link people across installers) and made-up ones (enumeration).
- A few ordinary apps that only ask for the person's own basic data and use it now and then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

DAYS = 120
DAY_SECONDS = 86_400
CALENDAR_SYNC_DAYS = 30
ORDINARY_USE_DAYS = 30
QUIZ_PROBES = 6
QUIZ_WAVE_START = 10  # the quiz's viral wave: installs between these simulated days
QUIZ_WAVE_DAYS = 75

EVERY_FIELD = "id,name,picture,email,birthday,hometown,current_city,relationship_status,likes"
FRIEND_FIELDS_CALENDAR = "id,name,birthday"


@dataclass(frozen=True)
class AppSpec:
    key: str
    name: str
    scopes: tuple[str, ...]
    purposes: dict[str, str] = field(default_factory=dict, hash=False)
    description: str = ""
    redirect_uri: str = ""

    @property
    def review_permissions(self) -> tuple[str, ...]:
        """What review approved: everything the app asks for (the quiz, too, passed review
        in 2014 by claiming academic research; the replay gives it the same benefit)."""
        return self.scopes


CALENDAR = AppSpec(
    key="calendar",
    name="Birthday Calendar",
    scopes=("openid", "profile", "user_birthday", "user_friends"),
    purposes={
        "user_birthday": "Show your birthday to your friends who use Birthday Calendar",
        "user_friends": "Show your friends' birthdays in your calendar",
    },
    description="Your friends' birthdays in your calendar.",
    redirect_uri="https://calendar.example/callback",
)
QUIZ = AppSpec(
    key="quiz",
    name="Personality Quiz",
    scopes=(
        "openid",
        "profile",
        "email",
        "user_birthday",
        "user_hometown",
        "user_location",
        "user_relationships",
        "user_likes",
        "user_posts",
        "user_friends",
    ),
    purposes={
        "user_likes": "Predict your personality from what you like (academic research)",
        "user_friends": "Compare your personality with your friends'",
    },
    description="thisisyourdigitallife: find out your personality type.",
    redirect_uri="https://thisisyourdigitallife.example/callback",
)
ORDINARY: tuple[AppSpec, ...] = (
    AppSpec(
        key="recipes",
        name="Recipe Box",
        scopes=("openid", "profile", "email"),
        description="Save recipes; sign in with Consentry.",
        redirect_uri="https://recipes.example/callback",
    ),
    AppSpec(
        key="runs",
        name="Run Tracker",
        scopes=("openid", "profile", "user_location"),
        purposes={"user_location": "Suggest running routes near you"},
        description="Log your runs.",
        redirect_uri="https://runs.example/callback",
    ),
    AppSpec(
        key="frames",
        name="Photo Frame",
        scopes=("openid", "profile"),
        description="Your profile picture on a digital frame.",
        redirect_uri="https://frames.example/callback",
    ),
)
APPS: tuple[AppSpec, ...] = (CALENDAR, QUIZ, *ORDINARY)
APP_BY_KEY = {a.key: a for a in APPS}


@dataclass(frozen=True)
class Params:
    people: int = 20_000
    seed: int = 2014
    days: int = DAYS
    quiz_share: float = 0.01
    calendar_share: float = 0.02
    ordinary_share: float = 0.005  # per ordinary app


@dataclass(frozen=True, order=True)
class Event:
    """One thing a person does with an app at `at` seconds after the replay starts."""

    at: int
    seq: int
    kind: str  # "install", "sync" (calendar), "use" (ordinary app)
    app: str
    person: int  # person id (database primary key)


def _pick(rng: np.random.Generator, ids: np.ndarray, share: float) -> np.ndarray:
    count = max(1, round(len(ids) * share)) if share > 0 else 0
    return np.sort(rng.choice(ids, size=min(count, len(ids)), replace=False))


def _moments(rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
    """Seconds from the start for events on these (fractional) days, at waking hours."""
    whole = np.floor(days).astype(np.int64)
    hour = rng.uniform(8, 23, size=len(days))
    return whole * DAY_SECONDS + (hour * 3600).astype(np.int64)


def schedule(person_ids: Sequence[int], params: Params) -> list[Event]:
    """Every event of the replay, in time order. Each app draws from its own random stream,
    so changing one app's share leaves the others' events unchanged."""
    ids = np.array(sorted(person_ids), dtype=np.int64)
    raw: list[tuple[int, str, str, int]] = []

    rng = np.random.default_rng([params.seed, 1])
    quiz = _pick(rng, ids, params.quiz_share)
    wave = QUIZ_WAVE_START + rng.beta(2.0, 3.0, size=len(quiz)) * min(
        QUIZ_WAVE_DAYS, params.days - QUIZ_WAVE_START - 1
    )
    moments = _moments(rng, wave)
    raw += [(int(t), "install", QUIZ.key, int(p)) for t, p in zip(moments, quiz, strict=True)]

    rng = np.random.default_rng([params.seed, 2])
    calendar = _pick(rng, ids, params.calendar_share)
    start = rng.uniform(0, params.days, size=len(calendar))
    for t, day, p in zip(_moments(rng, start), start, calendar, strict=True):
        raw.append((int(t), "install", CALENDAR.key, int(p)))
        later = np.arange(day + CALENDAR_SYNC_DAYS, params.days, CALENDAR_SYNC_DAYS)
        raw += [(int(s), "sync", CALENDAR.key, int(p)) for s in _moments(rng, later)]

    for n, spec in enumerate(ORDINARY, start=3):
        rng = np.random.default_rng([params.seed, n])
        users = _pick(rng, ids, params.ordinary_share)
        start = rng.uniform(0, params.days, size=len(users))
        for t, day, p in zip(_moments(rng, start), start, users, strict=True):
            raw.append((int(t), "install", spec.key, int(p)))
            later = np.arange(day + ORDINARY_USE_DAYS, params.days, ORDINARY_USE_DAYS)
            raw += [(int(s), "use", spec.key, int(p)) for s in _moments(rng, later)]

    raw.sort()
    return [Event(at, seq, kind, app, person) for seq, (at, kind, app, person) in enumerate(raw)]


# --- The friend-sharing opt-in of the third policy --------------------------------------------

# Rate and reasoning (docs/replay.md): when iOS 14.5 first asked every iPhone user whether
# apps may track them across other companies' apps (May 2021), Flurry Analytics measured
# that about 4% of US users and 12% worldwide said yes. Consentry's opt-in is off by
# default and no app can prompt for it (a person finds it in their privacy settings), so
# fewer say yes than to a prompt: we take 5% sharing their birthday (the calendar's whole
# reason to exist) and 2% sharing their whole profile (email is never shared with friends'
# apps, whatever the opt-in).
OPT_IN_BIRTHDAY_RATE = 0.05
OPT_IN_PROFILE_RATE = 0.02
OPT_IN_PROFILE_FIELDS: tuple[str, ...] = (
    "name",
    "picture",
    "birthday",
    "hometown",
    "current_city",
    "relationship_status",
    "likes",
)


def opt_ins(person_ids: Sequence[int], seed: int) -> dict[int, tuple[str, ...]]:
    """Who opts in to "friends may bring my <field> into apps they use", and for which
    fields, under the opt-in policy (its own random stream: the events do not change)."""
    ids = np.array(sorted(person_ids), dtype=np.int64)
    rng = np.random.default_rng([seed, 99])
    draw = rng.uniform(size=len(ids))
    chosen: dict[int, tuple[str, ...]] = {}
    for person, u in zip(ids.tolist(), draw.tolist(), strict=True):
        if u < OPT_IN_PROFILE_RATE:
            chosen[person] = OPT_IN_PROFILE_FIELDS
        elif u < OPT_IN_BIRTHDAY_RATE:
            chosen[person] = ("birthday",)
    return chosen
