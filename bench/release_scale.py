"""The release rule as the world grows: per-call cost of the Graph API reads at 1x, 10x
and 100x of the people, friendships and consents, on SQLite and on PostgreSQL, against
the unchecked read of the same rows measured in the same run, with the growth fitted.

    consentry bench release_scale [--people 2000] [--steps 1,10,100] [--calls 300]
                                  [--databases sqlite,postgresql]

One scratch world per database (bench/_live.py's scratch databases, dropped at the end)
is grown in steps, each step in one transaction of bulk inserts (COPY on PostgreSQL):
new people with the world generator's audience mix and friend-share opt-ins
(consentry.world.generator), friendships with the generator's lognormal friend counts
(capped at 1,000), half of them local (among the 200 people who joined just before,
the way people join with their friends) and half with anyone already there, so older
members gather more friends; consents of every new person to five apps (30 % use the
measured birthday calendar, 4 % of consents revoked, 6 % expired), their permission
rows, and closed routes on 0.5 % of the friendships.

At each size, in process (no HTTP; the functions of consentry.graph.access the Graph API
calls, each with its ledger entry and consent use), over --calls calls cycling through
--viewers people with 150-600 friends who use the app with user_friends:

- /v1/me (read_me);
- /v1/me/friends at limit 25 and 100, the first page and a deep page (a cursor two thirds
  into the friend list) (read_friends);
- /v1/people/<id> of a friend who uses the app, and of a non-friend: the same 404 as a
  made-up id (read_person);
- the SQL alone of the friends page at limit 100 (the statement read_friends runs,
  captured and re-executed), with its plan: EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL
  (does it stay an index range scan of the viewer's friendships plus index probes per
  row, how many buffers it touches) and EXPLAIN QUERY PLAN on SQLite, and on PostgreSQL
  the depth of the B-trees it walks (pgstattuple's pgstatindex).

The baseline of each figure, measured interleaved with it: the same rows read without
any check (bench/read_friends.py's baseline: the same page of friendships joined with
the friends' profiles, app-scoped ids, the same JSON-ready dicts; a person row by
primary key; the friendships-only SQL). Every figure is a median and a p95 in ms, and
the ratio of medians to its baseline.

The fit: least squares of each median against ln(people) and against people, the one
with the smaller residual named, a power-law exponent (log-log slope), and both fits
extrapolated to 100 M people. Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._live import django_env, load_average, postgres_base_url, scratch_database  # noqa: E402

FIELDS = "name,picture,birthday,hometown"
TARGET_PEOPLE = 100_000_000
TARGET_FRIENDSHIP_ROWS = 40_000_000_000
CALENDAR = "Birthday calendar"
# (name, share of people who use it, approved permissions, permissions its users grant)
APPS: tuple[tuple[str, float, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        CALENDAR,
        0.30,
        ("user_birthday", "user_hometown", "user_friends"),
        ("openid", "profile", "user_birthday", "user_hometown", "user_friends"),
    ),
    ("Music", 0.20, ("user_likes", "user_friends"), ("openid", "profile", "user_likes")),
    ("Club", 0.10, ("user_location",), ("openid", "profile", "user_location")),
    ("Maps", 0.15, ("user_location",), ("openid", "profile", "user_location")),
    ("Quiz", 0.02, ("user_birthday", "user_friends"), ("openid", "profile", "user_birthday")),
)
# Which optional permissions of an app's grant each user keeps (the rest are unticked).
OPTIONAL_SHARE = {"user_hometown": 0.5, "user_friends": 0.4, "user_likes": 0.7}
REVOKED_SHARE, EXPIRED_SHARE, CLOSED_ROUTE_SHARE = 0.04, 0.06, 0.005
MAX_DEGREE, LOCAL_SHARE, LOCAL_WINDOW = 1000, 0.5, 200
VIEWER_FRIENDS = (150, 600)
ENDPOINTS = (
    "me",
    "friends_25_first",
    "friends_25_deep",
    "friends_100_first",
    "friends_100_deep",
    "person_friend",
    "person_non_friend",
    "friends_sql_100_first",
    "friends_sql_100_deep",
)


# --- the parent: one worker process per database, then the fit -----------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=2000, help="people at 1x")
    parser.add_argument("--steps", default="1,10,100", help="multiples of --people")
    parser.add_argument("--mean-friends", type=float, default=100.0)
    parser.add_argument("--calls", type=int, default=300, help="calls per figure and size")
    parser.add_argument("--viewers", type=int, default=40)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one database
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for vendor in [v.strip() for v in args.databases.split(",") if v.strip()]:
        if vendor == "postgresql" and postgres_base_url() is None:
            print("PostgreSQL is not reachable: skipped", flush=True)
            continue
        url, drop = scratch_database(vendor, "release_scale")
        try:
            results[vendor] = run_worker(url, vendor, sys.argv[1:])
        finally:
            drop()
    if not results:
        raise SystemExit("no database to run on")
    summary: dict[str, Any] = {"bench": "release_scale", "databases": {}}
    for vendor, steps in results.items():
        fitted = fits(steps)
        summary["databases"][vendor] = {"steps": [compact(s) for s in steps], "fits": fitted}
        print(f"\n== {vendor}: fits (median ms against people)")
        for name, f in fitted.items():
            ratio = f.get("ratio", {})
            print(
                f"  {name:22} x{f['growth']:<5} exponent {f['exponent']:+.3f} "
                f"fits {f['fits']:6} at 100 M people: log fit {f['at_100m_log']}, "
                f"linear fit {f['at_100m_linear']}; ratio x{ratio.get('growth')} "
                f"exponent {ratio.get('exponent')}"
            )
        last = steps[-1]["endpoints"]
        summary[f"ratio_{vendor}_friends_100_first"] = last["friends_100_first"]["ratio"]
        summary[f"ratio_{vendor}_friends_sql_100_first"] = last["friends_sql_100_first"]["ratio"]
    largest = next(iter(results.values()))[-1]
    summary["largest_people"] = largest["people"]
    summary["largest_friendship_rows"] = largest["friendship_rows"]
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["load_average_end"] = load_average()
    print(json.dumps(summary, separators=(",", ":")))


def run_worker(url: str, vendor: str, argv: Sequence[str]) -> list[dict[str, Any]]:
    """Run this script as the worker for one scratch database; its step lines (JSON with a
    "step" key) are collected while everything it prints is passed through."""
    print(f"== {vendor}", flush=True)
    process = subprocess.Popen(
        [sys.executable, __file__, *argv, "--worker", vendor],
        env=django_env(url),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    steps = []
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.startswith('{"step"'):
            steps.append(json.loads(line))
    if process.wait():
        raise SystemExit(f"the {vendor} worker failed (exit {process.returncode})")
    return steps


def least_squares(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """(intercept, slope, rms residual) of y = intercept + slope * x."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sxx if sxx else 0.0
    intercept = my - slope * mx
    rms = math.sqrt(sum((b - intercept - slope * a) ** 2 for a, b in zip(x, y, strict=True)) / n)
    return intercept, slope, rms


def fit(people: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """y against people by least squares, against ln(people) and against people (the one
    with the smaller residual "fits"), the log-log slope ("exponent": 0 is flat, 1
    linear), the growth from the smallest size to the largest, and both fits at 100 M
    people."""
    la, lb, lrms = least_squares([math.log(p) for p in people], y)
    na, nb, nrms = least_squares(people, y)
    _, exponent, _ = least_squares([math.log(p) for p in people], [math.log(v) for v in y])
    return {
        "fits": "log" if lrms <= nrms else "linear",
        "log_fit": [round(la, 4), round(lb, 4)],  # intercept, slope per ln(people)
        "log_rms": round(lrms, 4),
        "linear_fit": [round(na, 4), round(nb * 1e6, 4)],  # intercept, slope per M people
        "linear_rms": round(nrms, 4),
        "exponent": round(exponent, 3),
        "growth": round(y[-1] / y[0], 2),
        "at_100m_log": round(la + lb * math.log(TARGET_PEOPLE), 2),
        "at_100m_linear": round(na + nb * TARGET_PEOPLE, 1),
    }


def fits(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per figure, the fit of its median (ms) and, in "ratio", of its ratio to the
    baseline, which cancels the machine's drift between sizes; on PostgreSQL also the
    buffers one friends page touches (EXPLAIN BUFFERS: independent of the load)."""
    people = [float(s["people"]) for s in steps]
    out: dict[str, dict[str, Any]] = {}
    if len(steps) < 2:
        return out
    for name in ENDPOINTS:
        figures = [s["endpoints"].get(name) for s in steps]
        if any(f is None or f["median_ms"] <= 0 or not f["ratio"] for f in figures):
            continue
        out[name] = fit(people, [float(f["median_ms"]) for f in figures])
        ratio = fit(people, [float(f["ratio"]) for f in figures])
        out[name]["ratio"] = {k: ratio[k] for k in ("fits", "exponent", "growth", "at_100m_log")}
    for kind in ("first", "deep"):
        blocks = [
            (s[f"plan_{kind}"].get("shared_hit_blocks") or 0)
            + (s[f"plan_{kind}"].get("shared_read_blocks") or 0)
            for s in steps
        ]
        if all(blocks):
            out[f"buffers_100_{kind}"] = fit(people, [float(b) for b in blocks])
    return out


def compact(step: dict[str, Any]) -> dict[str, Any]:
    """A step line reduced for the closing JSON: [median, p95, baseline median, ratio]
    per figure, the plan's shape and buffers, the B-tree levels."""
    keep = ("people", "friendship_rows", "consents", "closed_routes", "setup_s")
    out: dict[str, Any] = {k: step[k] for k in keep}
    out["load"] = step["load_average"][0]
    out["select_1_ms"] = step["select_1_ms"]
    out["commit_ms"] = step["commit_ms"]
    out["ms"] = {
        name: [e["median_ms"], e["p95_ms"], e["baseline_median_ms"], e["ratio"]]
        for name, e in step["endpoints"].items()
    }
    for kind in ("first", "deep"):
        p = step[f"plan_{kind}"]
        out[f"plan_{kind}"] = {
            "range_scan_and_probes": p["range_scan_and_probes"],
            **{k: p[k] for k in ("shared_hit_blocks", "shared_read_blocks") if k in p},
        }
    out["levels"] = {name: i["levels"] for name, i in step["indexes"].items()}
    return out


# --- the worker: grow one world, measure at each size ---------------------------------------


def worker(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    world = World(args)
    print(f"scratch {connection.vendor} database: {connection.settings_dict['NAME']}", flush=True)
    for multiple in (int(s) for s in args.steps.split(",")):
        setup_s = world.grow_to(args.people * multiple)
        row = world.measure(args)
        row["setup_s"] = round(setup_s, 1)
        print(json.dumps({"step": multiple, **row}, separators=(",", ":")), flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def figure(view: Sequence[float], base: Sequence[float]) -> dict[str, Any]:
    v, b = statistics.median(view) * 1000, statistics.median(base) * 1000
    return {
        "median_ms": round(v, 3),
        "p95_ms": round(percentile(view, 0.95) * 1000, 3),
        "baseline_median_ms": round(b, 3),
        "baseline_p95_ms": round(percentile(base, 0.95) * 1000, 3),
        "ratio": round(v / b, 2) if b else None,
        "calls": len(view),
    }


class World:
    """One scratch world that grows: people, friendships, consents, closed routes."""

    def __init__(self, args: argparse.Namespace) -> None:
        import numpy as np
        from django.db import connection, transaction

        from consentry.oauth.actions import do_create_application

        self.np = np
        self.rng = np.random.default_rng(args.seed)
        self.pick = random.Random(args.seed)
        self.mean_friends = args.mean_friends
        self.sqlite = connection.vendor == "sqlite"
        self.pks = np.zeros(0, dtype=np.int64)  # person pk by join order
        self.friendship_rows = self.consents = self.closed_routes = 0
        self.apps: list[tuple[int, float, tuple[str, ...]]] = []
        with transaction.atomic():
            for name, share, approved, granted in APPS:
                app, _ = do_create_application(
                    name=name,
                    redirect_uris=["https://apps.example/callback"],
                    approved_permissions=list(approved),
                    live=True,
                )
                app.limits = {
                    "requests_per_minute": 10**9,
                    "token_requests_per_minute": 10**9,
                    "subjects_per_day": 10**12,
                }
                app.save(update_fields=["limits"])
                self.apps.append((app.pk, share, granted))
        self.app_id = self.apps[0][0]
        if not self.sqlite:
            with connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")

    # growing

    def grow_to(self, people: int) -> float:
        from django.db import connection, transaction

        started = time.perf_counter()
        first = len(self.pks)
        if people <= first:
            return 0.0
        with transaction.atomic():
            self.pks = self.np.concatenate([self.pks, self._people(first, people)])
            a, b = self._edges(first, people)
            from consentry.world.loader import insert_friendships

            insert_friendships(self.pks[a], self.pks[b])
            self.friendship_rows += 2 * len(a)
            self._closed_routes(a, b)
            self._consents(first, people)
        with connection.cursor() as cursor:  # planner statistics, as a database in service has
            if self.sqlite:
                cursor.execute("ANALYZE")
            else:
                cursor.execute("VACUUM (ANALYZE) people_friendship, people_person, grants_consent")
        elapsed = time.perf_counter() - started
        print(
            f"grew to {people:,} people, {self.friendship_rows:,} friendship rows, "
            f"{self.consents:,} consents, {self.closed_routes:,} closed routes "
            f"in {elapsed:.1f} s",
            flush=True,
        )
        return elapsed

    def _people(self, first: int, last: int) -> Any:
        from consentry.people.fields import PROFILE_FIELDS, RELATIONSHIP_STATUSES
        from consentry.world.generator import (
            AUDIENCE_MIX,
            AUDIENCES,
            FRIEND_SHARE_FIELD,
            FRIEND_SHARE_PEOPLE,
            RELATIONSHIP_WEIGHTS,
            TOWNS,
        )
        from consentry.world.loader import insert_people
        from consentry.world.records import SHAREABLE_FIELDS, PersonRecord

        np, rng, n = self.np, self.rng, last - first
        audience = np.stack([rng.choice(3, n, p=AUDIENCE_MIX[f]) for f in PROFILE_FIELDS], axis=1)
        sharer = rng.random(n) < FRIEND_SHARE_PEOPLE
        shares = np.stack(
            [sharer & (rng.random(n) < FRIEND_SHARE_FIELD[f]) for f in SHAREABLE_FIELDS], axis=1
        )
        town = rng.integers(0, len(TOWNS), (n, 2))
        relationship = rng.choice(len(RELATIONSHIP_STATUSES), n, p=RELATIONSHIP_WEIGHTS)
        born = rng.integers(0, 365 * 60, n)
        records = [
            PersonRecord(
                id=f"rs{first + i:09d}",
                email=f"rs{first + i}@bench.test",
                name=f"Person {first + i}",
                picture=f"https://pictures.example.test/rs{first + i}.jpg",
                birthday=date(1950, 1, 1) + timedelta(days=int(born[i])),
                hometown=TOWNS[town[i, 0]],
                current_city=TOWNS[town[i, 1]],
                relationship_status=RELATIONSHIP_STATUSES[relationship[i]],
                audience=tuple(AUDIENCES[c] for c in audience[i]),
                friend_share=tuple(
                    f for f, on in zip(SHAREABLE_FIELDS, shares[i], strict=True) if on
                ),
            )
            for i in range(n)
        ]
        pks = insert_people(records, "!")  # an unusable password: nobody signs in
        return pks

    def _edges(self, first: int, last: int) -> tuple[Any, Any]:
        """Undirected friendships (a < b, as join-order indexes) of the people joining:
        each brings about half their lognormal friend count as friendships with people
        who joined before them (the rest arrive with later joiners)."""
        from consentry.world.generator import sample_degrees

        np, rng = self.np, self.rng
        degrees = sample_degrees(rng, last - first, self.mean_friends, MAX_DEGREE)
        joiner = np.repeat(np.arange(first, last, dtype=np.int64), np.rint(degrees / 2).astype(int))
        span = np.where(
            rng.random(len(joiner)) < LOCAL_SHARE, np.minimum(joiner, LOCAL_WINDOW), joiner
        )
        keep = span > 0
        joiner, span = joiner[keep], span[keep]
        earlier = joiner - 1 - (rng.random(len(joiner)) * span).astype(np.int64)
        pairs = np.unique(earlier * last + joiner)
        return pairs // last, pairs % last

    def _closed_routes(self, a: Any, b: Any) -> None:
        from django.utils import timezone

        np, rng = self.np, self.rng
        chosen = np.flatnonzero(rng.random(len(a)) < CLOSED_ROUTE_SHARE)
        flip = rng.random(len(chosen)) < 0.5
        person = np.where(flip, self.pks[b[chosen]], self.pks[a[chosen]])
        through = np.where(flip, self.pks[a[chosen]], self.pks[b[chosen]])
        now = self._stamp(timezone.now())
        self._insert(
            "grants_closedroute",
            ("person_id", "through_id", "closed_at"),
            [(int(p), int(t), now) for p, t in zip(person, through, strict=True)],
        )
        self.closed_routes += len(chosen)

    def _consents(self, first: int, last: int) -> None:
        from django.db import connection
        from django.utils import timezone

        from consentry.grants.permissions import permissions_to_mask

        np, rng, n = self.np, self.rng, last - first
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0) FROM grants_consent")
            (before,) = cursor.fetchone()
        rows, granted_of = [], {}
        for app_id, share, granted in self.apps:
            users = np.flatnonzero(rng.random(n) < share) + first
            fate = rng.random(len(users))
            for index, f in zip(users.tolist(), fate.tolist(), strict=True):
                kept = [p for p in granted if rng.random() < OPTIONAL_SHARE.get(p, 1.0)]
                revoked = f < REVOKED_SHARE
                expired = not revoked and f < REVOKED_SHARE + EXPIRED_SHARE
                used = now - timedelta(days=100 if expired else int(f * 80))
                rows.append(
                    (
                        int(self.pks[index]),
                        app_id,
                        self._stamp(used - timedelta(days=30)),
                        self._stamp(used),
                        self._stamp(used + timedelta(days=90)),
                        self._stamp(now) if revoked else None,
                        "real",
                        0 if revoked else permissions_to_mask(kept),
                    )
                )
                granted_of[(int(self.pks[index]), app_id)] = (kept, revoked)
        columns = (
            *("person_id", "application_id", "created_at", "last_used_at", "expires_at"),
            *("revoked_at", "email_choice", "permission_mask"),
        )
        self._insert("grants_consent", columns, rows)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, person_id, application_id FROM grants_consent WHERE id > %s", [before]
            )
            made = cursor.fetchall()
        stamp = self._stamp(now)
        permission_rows = [
            (pk, permission, stamp, "", stamp if granted_of[(p, a)][1] else None)
            for pk, p, a in made
            for permission in granted_of[(p, a)][0]
        ]
        self._insert(
            "grants_consentpermission",
            ("consent_id", "permission", "granted_at", "purpose_shown", "revoked_at"),
            permission_rows,
        )
        self.consents += len(rows)

    def _stamp(self, moment: Any) -> Any:
        from django.db import connection

        return connection.ops.adapt_datetimefield_value(moment)

    def _insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Bulk insert: executemany on SQLite, COPY on PostgreSQL."""
        from django.db import connection

        if not rows:
            return
        connection.ensure_connection()
        raw = connection.connection.cursor()
        if self.sqlite:
            marks = ", ".join("?" * len(columns))
            raw.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
            return
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    # measuring

    def viewers(self, count: int) -> list[dict[str, Any]]:
        """Up to `count` people with VIEWER_FRIENDS friends (fewer in a tiny world: the
        best connected), each given a fresh full grant to the calendar and a token."""
        from django.db import connection, transaction
        from django.utils import timezone

        from consentry.grants.models import Consent, ConsentPermission
        from consentry.grants.permissions import permissions_to_mask
        from consentry.graph.access import access_caller_by_bearer
        from consentry.oauth.models import AccessToken

        low, high = VIEWER_FRIENDS
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM people_person WHERE friend_count BETWEEN %s AND %s", [low, high]
            )
            candidates = [pk for (pk,) in cursor.fetchall()]
            if len(candidates) < count:  # a tiny world: its best connected people
                cursor.execute(
                    "SELECT id FROM people_person ORDER BY friend_count DESC, id LIMIT %s", [count]
                )
                candidates = [pk for (pk,) in cursor.fetchall()]
        chosen = self.pick.sample(candidates, min(count, len(candidates)))
        granted = APPS[0][3]
        now = timezone.now()
        out = []
        with transaction.atomic():
            Consent.objects.filter(person_id__in=chosen, application_id=self.app_id).delete()
            for pk in chosen:
                consent = Consent.objects.create(
                    person_id=pk,
                    application_id=self.app_id,
                    expires_at=now + timedelta(days=90),
                    permission_mask=permissions_to_mask(granted),
                )
                ConsentPermission.objects.bulk_create(
                    [ConsentPermission(consent=consent, permission=p) for p in granted]
                )
                raw = f"bench-release-scale-{pk}-{self.pick.getrandbits(64):x}"
                AccessToken.objects.create(
                    user_id=pk,
                    application_id=self.app_id,
                    consent=consent,
                    token=raw,
                    scope=" ".join(granted),
                    expires=now + timedelta(hours=6),
                )
                out.append({"pk": pk, "token": raw})
        for viewer in out:
            caller = access_caller_by_bearer(viewer["token"])
            assert caller is not None, "a fresh token must be usable"
            viewer["caller"] = caller
        return out

    def prepare(self, viewer: dict[str, Any]) -> bool:
        """The viewer's deep cursor, a listed friend, a non-friend and the SQL of their
        friends pages; False when they have no friend the rule lists."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from consentry.graph.access import read_friends
        from consentry.graph.cursor import encode_cursor
        from consentry.oauth.pairwise import app_scoped_ids
        from consentry.people.models import Friendship

        caller, pk = viewer["caller"], viewer["pk"]
        friends = list(
            Friendship.objects.filter(person_id=pk)
            .order_by("friend_id")
            .values_list("friend_id", flat=True)
        )
        viewer["friend_count"] = len(friends)
        deep = friends[(len(friends) * 2) // 3 - 1] if len(friends) >= 3 else 0
        viewer["deep_start"] = deep
        viewer["deep"] = encode_cursor("friends", self.app_id, pk, (deep,))
        page = read_friends(caller, fields(), 5000, None)
        own = [e["id"] for e in page["data"]]
        # A friend named by an app-scoped id uses the app (release.friend_id_scope).
        scoped = dict(zip(app_scoped_ids(self.app_id, friends), friends, strict=True))
        users = [scoped[i] for i in own if i in scoped]
        if not users:
            return False
        viewer["friend"] = self.pick.choice(users)
        viewer["friend_id"] = app_scoped_ids(self.app_id, [viewer["friend"]])[0]
        friend_set = {pk, *friends}
        strangers = (int(self.pks[self.pick.randrange(len(self.pks))]) for _ in range(1000))
        stranger = next((s for s in strangers if s not in friend_set), None)
        if stranger is None:
            return False
        viewer["stranger"] = stranger
        viewer["stranger_id"] = app_scoped_ids(self.app_id, [stranger])[0]
        for kind, cursor in (("first", None), ("deep", viewer["deep"])):
            connection.queries_log.clear()
            with CaptureQueriesContext(connection) as ctx:
                read_friends(caller, fields(), 100, cursor)
            viewer[f"sql_{kind}"] = next(
                q["sql"]
                for q in ctx.captured_queries
                if "people_friendship" in q["sql"] and "grants_consent" in q["sql"]
            )
            start = 0 if cursor is None else deep
            with CaptureQueriesContext(connection) as ctx:
                baseline_friends(pk, self.app_id, start, 100)
            viewer[f"base_sql_{kind}"] = ctx.captured_queries[-1]["sql"]
        return True

    def measure(self, args: argparse.Namespace) -> dict[str, Any]:
        from consentry.graph.access import read_friends, read_me, read_person
        from consentry.graph.errors import GraphError

        viewers = [v for v in self.viewers(args.viewers) if self.prepare(v)]
        assert viewers, "no viewer has a friend the release rule lists"
        flds, app = fields(), self.app_id
        garbage = made_up_404(viewers[0]["caller"], flds)

        def non_friend(v: dict[str, Any]) -> None:
            try:
                read_person(v["caller"], v["stranger_id"], flds)
            except GraphError as error:
                if (error.status, error.code, error.message) != garbage:
                    raise AssertionError("a non-friend got another answer than 404") from error
                return
            raise AssertionError("a non-friend was answered")

        def friend(v: dict[str, Any]) -> None:
            body = read_person(v["caller"], v["friend_id"], flds)
            assert body["data"]["id"] == v["friend_id"]

        def page(limit: int, deep: bool) -> Callable[[dict[str, Any]], None]:
            def call(v: dict[str, Any]) -> None:
                body = read_friends(v["caller"], flds, limit, v["deep"] if deep else None)
                assert len(body["data"]) <= limit

            return call

        def base_page(limit: int, deep: bool) -> Callable[[dict[str, Any]], object]:
            return lambda v: baseline_friends(
                v["pk"], self.app_id, v["deep_start"] if deep else 0, limit
            )

        cases: dict[str, tuple[Callable[[dict[str, Any]], object], ...]] = {
            "me": (
                lambda v: read_me(v["caller"], flds),
                lambda v: baseline_person(v["pk"], app),
            ),
            "friends_25_first": (page(25, False), base_page(25, False)),
            "friends_25_deep": (page(25, True), base_page(25, True)),
            "friends_100_first": (page(100, False), base_page(100, False)),
            "friends_100_deep": (page(100, True), base_page(100, True)),
            "person_friend": (friend, lambda v: baseline_person(v["friend"], app)),
            "person_non_friend": (
                non_friend,
                lambda v: baseline_person(v["stranger"], app),
            ),
            "friends_sql_100_first": (
                lambda v: run_sql(v["sql_first"]),
                lambda v: run_sql(v["base_sql_first"]),
            ),
            "friends_sql_100_deep": (
                lambda v: run_sql(v["sql_deep"]),
                lambda v: run_sql(v["base_sql_deep"]),
            ),
        }
        for view, base in cases.values():  # warm both sides
            for v in viewers[:3]:
                view(v)
                base(v)
        times: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in cases}
        # Round robin over the figures, each call interleaved with its baseline, so that a
        # burst of load from the machine's other users hits every figure and both sides.
        for i in range(args.calls):
            v = viewers[i % len(viewers)]
            for name, (view, base) in cases.items():
                t0 = time.perf_counter()
                view(v)
                t1 = time.perf_counter()
                base(v)
                t2 = time.perf_counter()
                times[name][0].append(t1 - t0)
                times[name][1].append(t2 - t1)
        endpoints = {name: figure(*pair) for name, pair in times.items()}
        for name, e in endpoints.items():
            print(
                f"  {name:22} median {e['median_ms']:8.3f} ms  p95 {e['p95_ms']:8.3f} ms  "
                f"baseline {e['baseline_median_ms']:7.3f} ms  ratio {e['ratio']}",
                flush=True,
            )
        v = viewers[0]
        return {
            "people": len(self.pks),
            "friendship_rows": self.friendship_rows,
            "consents": self.consents,
            "closed_routes": self.closed_routes,
            "viewers": len(viewers),
            "viewer_friends_median": statistics.median(x["friend_count"] for x in viewers),
            "load_average": load_average(),
            "select_1_ms": select_1_ms(),
            "commit_ms": commit_ms(v["caller"].consent.pk),
            "endpoints": endpoints,
            "plan_first": plan(v["sql_first"]),
            "plan_deep": plan(v["sql_deep"]),
            "indexes": index_depths(),
        }


def fields() -> tuple[str, ...]:
    from consentry.graph.access import parse_fields

    return parse_fields(FIELDS)


def made_up_404(caller: Any, flds: tuple[str, ...]) -> tuple[int, str, str]:
    """The 404 of an id no app was ever given: what a non-friend's answer must equal."""
    from consentry.graph.access import read_person
    from consentry.graph.errors import GraphError

    try:
        read_person(caller, "a" * 26, flds)
    except GraphError as error:
        if error.status != 404:
            raise AssertionError(f"a made-up id got {error.status}") from error
        return error.status, error.code, error.message
    raise AssertionError("a made-up id was answered")


def baseline_friends(person_id: int, app_id: int, start: int, limit: int) -> dict[str, Any]:
    """The same page of friendships with the same friends' profile columns, app-scoped
    ids, dates rendered and the cursor sealed as read_friends does: no token, no grant,
    no consent join, no release rule, no ledger entry (bench/read_friends.py)."""
    from consentry.graph.cursor import encode_cursor
    from consentry.oauth.pairwise import app_scoped_ids
    from consentry.people.models import Friendship

    rows = list(
        Friendship.objects.filter(person_id=person_id, friend_id__gt=start)
        .order_by("friend_id")
        .values_list(
            "friend_id", "friend__name", "friend__picture", "friend__birthday", "friend__hometown"
        )[: limit + 1]
    )
    more = len(rows) > limit
    del rows[limit:]
    ids = app_scoped_ids(app_id, [row[0] for row in rows])
    data = [
        {
            "id": sid,
            "name": n,
            "picture": p,
            "birthday": b.isoformat() if b else None,
            "hometown": h,
        }
        for sid, (_, n, p, b, h) in zip(ids, rows, strict=True)
    ]
    cursor = encode_cursor("friends", app_id, person_id, (rows[-1][0],)) if more else None
    return {"data": data, "paging": {"next": cursor}, "meta": {"withheld_subjects": 0}}


_PERSON = "SELECT name, picture, birthday, hometown FROM people_person WHERE id = %s"


def baseline_person(person_id: int, app_id: int) -> dict[str, Any]:
    """One person's columns by primary key with their app-scoped id: no checks."""
    from django.db import connection

    from consentry.oauth.pairwise import app_scoped_ids

    with connection.cursor() as cursor:
        cursor.execute(_PERSON, [person_id])
        name, picture, birthday, hometown = cursor.fetchone()
    return {
        "data": {
            "id": app_scoped_ids(app_id, [person_id])[0],
            "name": name,
            "picture": picture,
            "birthday": birthday.isoformat() if hasattr(birthday, "isoformat") else birthday,
            "hometown": hometown,
        }
    }


def run_sql(sql: str) -> list[Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def select_1_ms() -> float:
    """One round trip to the database at this moment: the floor under any query."""
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        run_sql("SELECT 1")
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 3)


def commit_ms(consent_id: int) -> float:
    """One committed one-row UPDATE at this moment (on PostgreSQL a WAL flush, shared with
    whatever else the server is doing): the floor under every call, which writes its
    ledger entry in a transaction of its own."""
    from django.db import connection, transaction

    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE grants_consent SET email_choice = email_choice WHERE id = %s", [consent_id]
            )
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 3)


def plan(sql: str) -> dict[str, Any]:
    """How the database runs the friends page: PostgreSQL's EXPLAIN (ANALYZE, BUFFERS)
    reduced to its nodes, buffers and whether it is the intended shape (an index range
    scan of the viewer's friendships, then index probes per row: no sequential scan, no
    hash or merge join, no sort); SQLite's EXPLAIN QUERY PLAN lines."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            lines = [row[-1] for row in cursor.fetchall()]
            return {
                "nodes": lines,
                "range_scan_and_probes": all(line.startswith("SEARCH") for line in lines),
            }
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
        (document,) = cursor.fetchone()
    if isinstance(document, str):
        document = json.loads(document)
    top = document[0]
    nodes: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        label = node["Node Type"]
        if "Index Name" in node:
            label += f" {node['Index Name']}"
        elif "Relation Name" in node:
            label += f" {node['Relation Name']}"
        nodes.append("  " * depth + label)
        for child in node.get("Plans", ()):
            walk(child, depth + 1)

    walk(top["Plan"], 0)
    types = " ".join(nodes)
    return {
        "nodes": [n.strip() for n in nodes],
        "range_scan_and_probes": "friendship_unique_pair" in types
        and not any(t in types for t in ("Seq Scan", "Hash Join", "Merge Join", "Sort")),
        "shared_hit_blocks": top["Plan"].get("Shared Hit Blocks"),
        "shared_read_blocks": top["Plan"].get("Shared Read Blocks"),
        "planning_ms": round(top.get("Planning Time", 0.0), 3),
        "execution_ms": round(top.get("Execution Time", 0.0), 3),
    }


def index_depths() -> dict[str, Any]:
    """PostgreSQL: levels and pages of the B-trees a friends page walks."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return {}
    out = {}
    with connection.cursor() as cursor:
        for index in ("friendship_unique_pair", "people_person_pkey", "consent_one_per_person_app"):
            cursor.execute(
                "SELECT tree_level, internal_pages, leaf_pages FROM pgstatindex(%s)", [index]
            )
            level, internal, leaf = cursor.fetchone()
            out[index] = {"levels": level + 1, "internal_pages": internal, "leaf_pages": leaf}
    return out


if __name__ == "__main__":
    main()
