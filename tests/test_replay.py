"""The Cambridge Analytica replay end to end on a small world: every figure of the report
is checked against the raw ledger records and against the world (who is whose friend,
who installed, who opted in, audiences), under each of the three policies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from consentry.detection.api import firings_for_app
from consentry.detection.models import RuleSetting
from consentry.grants.models import Consent
from consentry.grants.permissions import RELEASE_BIT, RELEASE_FIELDS
from consentry.ledger.api import read_entry
from consentry.ledger.models import CallRecord
from consentry.notices.models import Notice
from consentry.people.fields import FIELD_BIT
from consentry.people.models import Friendship, Person
from consentry.replay import report as report_module
from consentry.replay import scenario
from consentry.replay.figures import policy_figures
from consentry.replay.models import DemoWorld, ReplayReport
from consentry.replay.runner import Policy, run_policy
from consentry.world.loader import world_people
from tests.oauth_flow import cheap_argon2  # noqa: F401

pytestmark = pytest.mark.usefixtures("cheap_argon2")

PARAMS = scenario.Params(
    people=300, seed=7, quiz_share=0.03, calendar_share=0.03, ordinary_share=0.01
)
VISIBLE = {"public", "friends"}
QUIZ_PROFILE_FIELDS = ("name", "picture", "birthday", "hometown", "current_city",
                       "relationship_status", "likes")  # fmt: skip


@pytest.fixture
def world(db: None) -> list[int]:
    call_command("world_generate", people=PARAMS.people, seed=PARAMS.seed, mean_friends=60)
    return list(world_people().order_by("pk").values_list("pk", flat=True))


def ledger_reach(app_id: int) -> dict[int, int]:
    """Subject -> union of released field bits, straight from the call records."""
    reach: dict[int, int] = defaultdict(int)
    for index in CallRecord.objects.filter(app_id=app_id).values_list("index", flat=True):
        for subject, mask in read_entry(index).released:
            reach[subject] |= mask
    return dict(reach)


def expected_quiz_reach(policy: Policy, installers: set[int], people: list[int]) -> dict[int, int]:
    """What the quiz should have received about whom, from the world alone."""
    rows = {
        p.pk: p
        for p in Person.objects.filter(pk__in=people).only(
            "pk", *(f"audience_{f}" for f in QUIZ_PROFILE_FIELDS)
        )
    }
    friends: dict[int, set[int]] = defaultdict(set)
    for a, b in Friendship.objects.filter(person_id__in=installers).values_list(
        "person_id", "friend_id"
    ):
        friends[a].add(b)
    own = RELEASE_BIT["id"] | RELEASE_BIT["email"] | RELEASE_BIT["posts"]
    for name in QUIZ_PROFILE_FIELDS:
        own |= RELEASE_BIT[name]
    expected: dict[int, int] = {p: own for p in installers}  # everything about themselves
    opt_ins = scenario.opt_ins(people, PARAMS.seed) if policy is Policy.OPT_IN else {}
    for installer in installers:
        for friend in friends[installer]:
            person = rows[friend]
            visible = {f for f in QUIZ_PROFILE_FIELDS if person.audience(f).value in VISIBLE}
            if friend in installers:
                continue  # an installer's own reads already cover every field
            if policy is Policy.LEGACY:
                shared = visible  # the installer's consent alone
            elif policy is Policy.OPT_IN:
                shared = visible & set(opt_ins.get(friend, ()))
            else:
                shared = set()
            if policy is Policy.LEGACY or shared:
                mask = RELEASE_BIT["id"]
                for name in shared:
                    mask |= RELEASE_BIT[name]
                expected[friend] = expected.get(friend, 0) | mask
    return expected


@pytest.mark.parametrize("policy", list(Policy))
def test_every_figure_agrees_with_the_ledger_and_the_world(
    world: list[int], policy: Policy
) -> None:
    if policy is not Policy.LEGACY:
        # A 300-person world is far below the default volume minimums, so the operator's
        # override scales the suspension rule down to it, as staff could for a small site.
        RuleSetting.objects.create(
            rule="enumeration_suspend", when={"not_found": 20, "not_found_rate": 0.2}
        )
    stats = run_policy(policy, PARAMS)
    figures = policy_figures(stats)
    quiz_id = stats.app_ids[scenario.QUIZ.key]
    quiz = figures["quiz"]

    installers = set(
        Consent.objects.filter(application_id=quiz_id).values_list("person_id", flat=True)
    )
    assert quiz["installers"] == len(installers) == stats.installs[scenario.QUIZ.key]
    planned = round(PARAMS.people * PARAMS.quiz_share)
    detection = figures["detection"]
    if policy is Policy.LEGACY:
        assert quiz["installers"] == planned  # 2014 had no harvest detection
        assert detection["suspended_day"] is None
        assert detection["notified_people"] is None
    else:
        # Detection suspends the quiz as its harvest starts; later installs are refused.
        assert detection["suspended_day"] is not None
        refused = stats.refused_installs.get(scenario.QUIZ.key, 0)
        assert quiz["installers"] + refused == planned
        assert not firings_for_app(stats.app_ids[scenario.CALENDAR.key])

    reach = ledger_reach(quiz_id)
    assert reach == expected_quiz_reach(policy, installers, world)
    assert quiz["reached"] == len(reach)
    without = set(reach) - installers
    assert quiz["without_own_consent"] == len(without)
    opted = {p for p, m in Person.objects.values_list("pk", "friend_share_mask") if m}
    assert quiz["via_opt_in"] == len(without & opted)
    assert quiz["without_consent_or_opt_in"] == len(without - opted)
    assert quiz["amplification"] == round(len(reach) / len(installers), 2)
    for name in RELEASE_FIELDS:
        assert quiz["per_field"][name] == sum(1 for m in reach.values() if m & RELEASE_BIT[name])
    assert quiz["calls"] == CallRecord.objects.filter(app_id=quiz_id).count()
    assert stats.probes_found == 0  # no probe ever named someone the quiz may not see

    calendar_reach = ledger_reach(stats.app_ids[scenario.CALENDAR.key])
    calendar_users = set(
        Consent.objects.filter(application_id=stats.app_ids[scenario.CALENDAR.key]).values_list(
            "person_id", flat=True
        )
    )
    assert figures["calendar"]["per_field_without_consent"]["birthday"] == sum(
        1
        for p, m in calendar_reach.items()
        if p not in calendar_users and m & RELEASE_BIT["birthday"]
    )

    if policy is Policy.OPT_IN:
        chosen = scenario.opt_ins(world, PARAMS.seed)
        assert opted == set(chosen)
        for person, fields in chosen.items():
            mask = Person.objects.get(pk=person).friend_share_mask
            assert mask == sum(FIELD_BIT[f] for f in fields)
    else:
        assert opted == set()  # the product's default: nobody shares through friends

    if policy is Policy.LEGACY:
        assert quiz["without_own_consent"] > 5 * quiz["installers"]  # amplified
    else:
        assert quiz["without_consent_or_opt_in"] == 0
    if policy is Policy.CONSENTRY:
        assert quiz["reached"] == quiz["installers"]
    if policy is not Policy.LEGACY:
        # Staff banned the suspended quiz: everyone in its blast radius, and no one else,
        # got a notice of what it received.
        notified = set(
            Notice.objects.filter(data__app_id=quiz_id).values_list("person_id", flat=True)
        )
        assert notified == set(reach)
        assert detection["notified_people"] == len(reach)
        assert isinstance(detection["notified_within_seconds"], float | int)

    assert figures["ledger"]["ok"], figures["ledger"]["summary"]
    assert figures["ledger"]["entries"] == CallRecord.objects.count()
    assert figures["world"]["people"] == PARAMS.people
    json.dumps(figures)  # the report is plain JSON


def sample_figures() -> dict[str, Any]:
    """Figures of one policy run, for the report's page and table."""
    return {
        "world": {"people": 100, "friendships": 900, "mean_friends": 18.0},
        "quiz": {
            "installers": 1,
            "reached": 90,
            "without_own_consent": 89,
            "via_opt_in": 0,
            "without_consent_or_opt_in": 89,
            "amplification": 90.0,
            "per_field": dict.fromkeys(RELEASE_FIELDS, 5),
            "per_field_without_consent": dict.fromkeys(RELEASE_FIELDS, 4),
            "calls": 3,
        },
        "calendar": {"per_field_without_consent": dict.fromkeys(RELEASE_FIELDS, 2)},
        "detection": dict.fromkeys(
            (
                "alerted_day",
                "throttled_day",
                "suspended_day",
                "notified_people",
                "notified_within_seconds",
            ),
            "not available",
        ),
        "ledger": {"ok": True, "entries": 3, "subject_records": 91, "summary": "OK"},
        "run": {"probes": 6, "probes_found": 0},
    }


def test_report_table_and_page(db: None, client: Any) -> None:
    fake = sample_figures()
    report = report_module.build_report(PARAMS, {"legacy": fake}, 1.0)
    text = report_module.table(report)
    assert "People whose data reached the quiz" in text
    assert "90" in text
    assert "not available" in text

    assert client.get("/demo/report").status_code == 404
    assert client.get("/demo/report.json").status_code == 404
    ReplayReport.objects.create(report=report)
    page = client.get("/demo/report")
    assert page.status_code == 200
    assert b"People whose data reached the quiz" in page.content
    assert client.get("/demo/report.json").json()["policies"][0]["quiz"]["reached"] == 90
    chart = client.get("/demo/report/reach.svg")
    assert chart.status_code == 200
    assert chart["Content-Type"] == "image/svg+xml"
    assert b"<svg" in chart.content
    assert client.get("/demo/report/nothing.svg").status_code == 404


def test_replay_refuses_a_database_it_did_not_create(db: None, tmp_path: Path) -> None:
    call_command("world_generate", people=20, seed=1)
    assert not DemoWorld.objects.exists()
    with pytest.raises(CommandError, match="demo database"):
        call_command("replay", "run", "--policy", "legacy", "--out", str(tmp_path / "x.json"))
    with pytest.raises(CommandError, match="demo database"):
        call_command("replay", "publish", str(tmp_path / "x.json"))


def test_the_server_never_loads_the_legacy_rule(tmp_path: Path) -> None:
    """The legacy v1.0 rule is a replay comparison only: loading the site (settings, URL
    map, WSGI application, a request) does not even import it."""
    code = (
        "import sys, django; django.setup();"
        "import consentry.urls, consentry.wsgi;"
        "from django.test import Client; Client().get('/healthz');"
        "print('consentry.replay.legacy' in sys.modules)"
    )
    env = {"CONSENTRY_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "consentry.settings",
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CONSENTRY_DATABASE_URL", "").startswith("postgres"),
    reason="the demo always uses its own SQLite files; runs in the SQLite pass",
)
def test_demo_replays_prints_the_report_and_reuses_it(tmp_path: Path) -> None:
    """`consentry demo` end to end in child processes, as `make demo` runs it: a world,
    three policies side by side, the table, the sign-ins; the second run reuses it all."""
    env = {"CONSENTRY_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "consentry", "demo", "--people", "120", "--no-serve"]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Generating a world of 120 people" in first.stdout
    assert "People whose data reached the quiz" in first.stdout
    assert "TOTP secret" in first.stdout
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert [p["key"] for p in report["policies"]] == [p.value for p in Policy]
    assert all(p["ledger"]["ok"] for p in report["policies"])
    assert report["policies"][1]["quiz"]["without_consent_or_opt_in"] == 0
    signins = tmp_path / "demo" / "sign-ins.json"
    assert signins.stat().st_mode & 0o077 == 0
    assert "totp_secret" not in json.dumps(report)

    second = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Reusing the replay" in second.stdout
    assert "Generating" not in second.stdout
    assert json.loads((tmp_path / "demo" / "report.json").read_text()) == report
