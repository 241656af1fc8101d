"""The deterministic synthetic world (docs/rules.md "Data model": "a deterministic synthetic
world generator serves demos, tests and benchmarks"). Pure numpy, no database.

Same `WorldParams` => same `World`, bit for bit: every random choice comes from a numpy
PCG64 stream seeded from `seed` (one independent child stream per aspect, so changing,
say, how posts are written leaves friendships unchanged).

Friend counts follow a lognormal with sigma 1.15, which gives median ~ half the mean as
measured on Facebook in 2011 (Ugander et al., "The Anatomy of the Facebook Social
Graph": median 99, mean 190), capped at MAX_FRIENDS. Friendships are drawn with the
Chung-Lu model (each endpoint chosen with probability proportional to its target
degree) with a twist for clustering: for `local_share` of the friendships the second
endpoint is drawn from a window of the weight line around the first. People are laid
out on that line grouped by hometown, so local friendships join townspeople and their
friends know each other. Because a uniform offset mod the total weight is still uniform,
the local draw keeps every person's expected degree: clustering costs no accuracy.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from consentry.people.fields import MAX_FRIENDS, PROFILE_FIELDS, RELATIONSHIP_STATUSES, Audience
from consentry.world import names
from consentry.world.records import SHAREABLE_FIELDS, PersonRecord, PostRecord

TOWNS: tuple[str, ...] = names.DUTCH_TOWNS + names.ENGLISH_TOWNS
DEGREE_SIGMA = 1.15
REFERENCE_DAY = date(2014, 6, 1)  # the world is seen as of the quiz's summer (docs/rules.md facts)
POSTS_FROM = datetime(2010, 1, 1, tzinfo=UTC)
EMAIL_DOMAIN = "example.test"  # RFC 2606: can never reach a real mailbox

# Per-field audience mix (public, friends, only_me); most people keep the defaults.
AUDIENCE_MIX: dict[str, tuple[float, float, float]] = {
    "name": (0.97, 0.03, 0.0),
    "picture": (0.90, 0.08, 0.02),
    "email": (0.05, 0.25, 0.70),
    "birthday": (0.20, 0.60, 0.20),
    "hometown": (0.35, 0.55, 0.10),
    "current_city": (0.30, 0.55, 0.15),
    "relationship_status": (0.25, 0.55, 0.20),
    "likes": (0.40, 0.50, 0.10),
    "posts": (0.20, 0.70, 0.10),
}
AUDIENCES = (Audience.PUBLIC, Audience.FRIENDS, Audience.ONLY_ME)
# Opting in to "friends may bring my <field> into apps" is off by default (docs/rules.md rule 3):
# a small share of people turn it on, for one or a few fields.
FRIEND_SHARE_PEOPLE = 0.04
FRIEND_SHARE_FIELD: dict[str, float] = {
    "name": 0.3,
    "picture": 0.3,
    "birthday": 0.7,
    "hometown": 0.3,
    "current_city": 0.3,
    "relationship_status": 0.2,
    "likes": 0.3,
    "posts": 0.1,
}
RELATIONSHIP_WEIGHTS = (0.30, 0.20, 0.05, 0.30, 0.03, 0.01, 0.02, 0.03, 0.06)


@dataclass(frozen=True)
class WorldParams:
    """What to generate. `mean_friends` is the target for a large world; a small world
    cannot give everyone 200 friends, so the effective target is at most a tenth of the
    other people (`target_mean`)."""

    people: int
    seed: int
    mean_friends: float = 200.0
    max_friends: int = MAX_FRIENDS
    local_share: float = 0.5
    local_window: int = 200  # people on either side a local friendship may reach
    posts_per_person: float = 3.0

    @property
    def target_mean(self) -> float:
        return max(0.0, min(self.mean_friends, (self.people - 1) / 10))


@dataclass(frozen=True, eq=False)
class World:
    """A generated world: people, undirected friendships as index pairs into `people`
    (`friendships[k] = (i, j)` with i < j, sorted), and posts."""

    params: WorldParams
    people: list[PersonRecord]
    friendships: np.ndarray = field(repr=False)
    posts: list[PostRecord] = field(repr=False)

    def degrees(self) -> np.ndarray:
        return np.bincount(self.friendships.ravel(), minlength=len(self.people))


def sample_degrees(
    rng: np.random.Generator, n: int, mean: float, cap: int = MAX_FRIENDS
) -> np.ndarray:
    """Target friend counts: lognormal (heavy tail) with the given mean, capped."""
    if n == 0 or mean <= 0:
        return np.zeros(n, dtype=np.int64)
    mu = np.log(mean) - DEGREE_SIGMA**2 / 2
    raw = rng.lognormal(mu, DEGREE_SIGMA, n)
    return np.clip(np.rint(raw), 0, min(cap, n - 1)).astype(np.int64)


def sample_friendships(
    rng: np.random.Generator, weights: np.ndarray, params: WorldParams
) -> np.ndarray:
    """Undirected friendships (i < j, sorted, unique) with expected degree ~ weights,
    nobody above params.max_friends."""
    n = len(weights)
    total = float(weights.sum())
    target = int(total // 2)
    if n < 2 or target == 0:
        return np.zeros((0, 2), dtype=np.int32)
    cum = np.cumsum(weights, dtype=np.float64)
    window = params.local_window * float(weights.mean())
    keys = np.zeros(0, dtype=np.int64)
    yield_rate = 1.0  # share of drawn pairs that turn out new; learnt round by round
    for _ in range(20):  # duplicates and self-loops are dropped; top up until enough
        missing = target - len(keys)
        if missing <= 0:
            break
        k = int(missing / yield_rate * 1.02) + 64
        u1 = rng.random(k) * total
        local = rng.random(k) < params.local_share
        u2 = np.where(local, (u1 + rng.uniform(-window, window, k)) % total, rng.random(k) * total)
        a = np.minimum(np.searchsorted(cum, u1, side="right"), n - 1)
        b = np.minimum(np.searchsorted(cum, u2, side="right"), n - 1)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        fresh = _sorted_unique(np.sort((lo * n + hi)[lo != hi]))
        before = len(keys)
        # Both runs are sorted: the stable sort (timsort) merges them in linear time.
        keys = _sorted_unique(np.sort(np.concatenate([keys, fresh]), kind="stable"))
        yield_rate = max((len(keys) - before) / k, 0.01)
    if len(keys) > target:
        keys = np.sort(rng.choice(keys, target, replace=False))
    pairs = np.stack([keys // n, keys % n], axis=1)
    return _enforce_cap(rng, pairs, n, params.max_friends).astype(np.int32)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Drop repeats from a sorted array (np.unique hashes in numpy 2.3+: 10x slower)."""
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _enforce_cap(rng: np.random.Generator, pairs: np.ndarray, n: int, cap: int) -> np.ndarray:
    """Drop random friendships of anyone above `cap`: an edge survives if it is among the
    first `cap` (in a random order) of both its endpoints, so one pass suffices."""
    if len(pairs) == 0 or np.bincount(pairs.ravel(), minlength=n).max() <= cap:
        return pairs
    m = len(pairs)
    shuffled = pairs[rng.permutation(m)]
    ends = shuffled.T.ravel()  # every endpoint occurrence: column 0, then column 1
    edge = np.tile(np.arange(m), 2)
    by_end = np.lexsort((edge, ends))  # per person, their friendships in shuffled order
    sorted_ends = ends[by_end]
    rank = np.empty(2 * m, dtype=np.int64)
    rank[by_end] = np.arange(2 * m) - np.searchsorted(sorted_ends, sorted_ends, side="left")
    keep = (rank[:m] < cap) & (rank[m:] < cap)
    kept = shuffled[keep]
    return kept[np.lexsort((kept[:, 1], kept[:, 0]))]


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in ascii_text.lower() if c.isalnum())


def _zipf(count: int, exponent: float = 1.0) -> np.ndarray:
    w = 1.0 / np.arange(1, count + 1) ** exponent
    return w / w.sum()


def generate_world(params: WorldParams) -> World:
    """Generate the world `params` describes; deterministic in params."""
    n = params.people
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(params.seed).spawn(6)]
    place_rng, person_rng, degree_rng, edge_rng, like_rng, post_rng = streams

    # Hometowns first, then lay people out grouped by hometown (see module docstring).
    dutch_towns, english_towns = len(names.DUTCH_TOWNS), len(names.ENGLISH_TOWNS)
    dutch_home = place_rng.random(n) < 0.5
    hometown = np.where(
        dutch_home,
        place_rng.choice(dutch_towns, n, p=_zipf(dutch_towns)),
        dutch_towns + place_rng.choice(english_towns, n, p=_zipf(english_towns)),
    )
    hometown = np.sort(hometown)
    from_nl = hometown < dutch_towns
    dutch = np.where(from_nl, place_rng.random(n) < 0.92, place_rng.random(n) < 0.05)
    moved = place_rng.random(n) < 0.35
    abroad = place_rng.random(n) < 0.06
    same_country_city = np.where(
        from_nl,
        place_rng.choice(dutch_towns, n, p=_zipf(dutch_towns, 1.3)),
        dutch_towns + place_rng.choice(english_towns, n, p=_zipf(english_towns, 1.3)),
    )
    other_country_city = np.where(
        from_nl,
        dutch_towns + place_rng.choice(english_towns, n, p=_zipf(english_towns, 1.3)),
        place_rng.choice(dutch_towns, n, p=_zipf(dutch_towns, 1.3)),
    )
    current = np.where(moved, np.where(abroad, other_country_city, same_country_city), hometown)

    first = np.where(
        dutch,
        person_rng.integers(0, len(names.DUTCH_FIRST_NAMES), n),
        person_rng.integers(0, len(names.ENGLISH_FIRST_NAMES), n),
    )
    last = np.where(
        dutch,
        person_rng.integers(0, len(names.DUTCH_LAST_NAMES), n),
        person_rng.integers(0, len(names.ENGLISH_LAST_NAMES), n),
    )
    age_days = (np.clip(person_rng.normal(33, 13, n), 13, 90) * 365.25).astype(np.int64)
    birthday_ordinal = REFERENCE_DAY.toordinal() - age_days
    has_birthday = person_rng.random(n) < 0.95
    has_picture = person_rng.random(n) < 0.85
    relationship = person_rng.choice(len(RELATIONSHIP_STATUSES), n, p=RELATIONSHIP_WEIGHTS)
    has_relationship = person_rng.random(n) < 0.7
    english_speaker = person_rng.random(n) < 0.1  # some Dutch people use the English UI
    audience_codes = np.stack(
        [person_rng.choice(3, n, p=AUDIENCE_MIX[f]) for f in PROFILE_FIELDS], axis=1
    )
    sharer = person_rng.random(n) < FRIEND_SHARE_PEOPLE
    shares = np.stack(
        [sharer & (person_rng.random(n) < FRIEND_SHARE_FIELD[f]) for f in SHAREABLE_FIELDS],
        axis=1,
    )

    # Likes: a weighted sample without replacement per person (Gumbel top-k).
    like_count = np.minimum(like_rng.poisson(5, n), len(names.PAGES))
    gumbel = np.log(_zipf(len(names.PAGES), 0.8)).astype(np.float32) + like_rng.gumbel(
        size=(n, len(names.PAGES))
    ).astype(np.float32)
    like_order = np.argsort(-gumbel, axis=1)[:, : int(like_count.max(initial=0))]

    people: list[PersonRecord] = []
    for i in range(n):
        nl = bool(dutch[i])
        first_name = (names.DUTCH_FIRST_NAMES if nl else names.ENGLISH_FIRST_NAMES)[first[i]]
        last_name = (names.DUTCH_LAST_NAMES if nl else names.ENGLISH_LAST_NAMES)[last[i]]
        person_id = f"p{i + 1:07d}"
        people.append(
            PersonRecord(
                id=person_id,
                email=f"{_slug(first_name)}.{_slug(last_name)}.{i + 1}@{EMAIL_DOMAIN}",
                name=f"{first_name} {last_name}",
                picture=f"https://pictures.{EMAIL_DOMAIN}/{person_id}.jpg"
                if has_picture[i]
                else "",
                birthday=date.fromordinal(int(birthday_ordinal[i])) if has_birthday[i] else None,
                hometown=TOWNS[hometown[i]],
                current_city=TOWNS[current[i]],
                relationship_status=RELATIONSHIP_STATUSES[relationship[i]]
                if has_relationship[i]
                else "",
                likes=tuple(names.PAGES[k] for k in like_order[i, : like_count[i]]),
                audience=tuple(AUDIENCES[c] for c in audience_codes[i]),
                friend_share=tuple(
                    f for f, on in zip(SHAREABLE_FIELDS, shares[i], strict=True) if on
                ),
                language="nl" if nl and not english_speaker[i] else "en",
            )
        )

    degrees = sample_degrees(degree_rng, n, params.target_mean, params.max_friends)
    friendships = sample_friendships(edge_rng, degrees.astype(np.float64), params)
    return World(params, people, friendships, _posts(post_rng, people, params.posts_per_person))


def _posts(rng: np.random.Generator, people: list[PersonRecord], mean: float) -> list[PostRecord]:
    n = len(people)
    counts = rng.poisson(mean, n)
    total = int(counts.sum())
    span = int(
        (datetime.combine(REFERENCE_DAY, datetime.min.time(), UTC) - POSTS_FROM).total_seconds()
    )
    seconds = rng.integers(0, span, total)
    template = rng.integers(0, len(names.POST_TEMPLATES_EN), total)
    own_audience = rng.random(total) < 0.7
    audience = rng.choice(3, total, p=(0.25, 0.6, 0.15))
    like_pick = rng.integers(0, len(names.PAGES), total)
    posts: list[PostRecord] = []
    k = 0
    for i, person in enumerate(people):
        templates = names.POST_TEMPLATES_NL if person.language == "nl" else names.POST_TEMPLATES_EN
        default = person.audience[PROFILE_FIELDS.index("posts")]
        for j in range(counts[i]):
            like = (
                person.likes[j % len(person.likes)] if person.likes else names.PAGES[like_pick[k]]
            )
            posts.append(
                PostRecord(
                    id=f"{person.id}-{j + 1}",
                    author=person.id,
                    created_at=POSTS_FROM + timedelta(seconds=int(seconds[k])),
                    message=templates[template[k]].format(
                        city=person.current_city, hometown=person.hometown, like=like
                    ),
                    audience=default if own_audience[k] else AUDIENCES[audience[k]],
                )
            )
            k += 1
    return posts
