"""A harvest replay through the real Graph API: the default rules throttle and then
suspend the quiz before it reaches a configured share of the world, while a birthday
calendar used by a third of the world in the same run raises nothing."""

from __future__ import annotations

import random

import pytest
from django.core.cache import cache
from django.test import Client

from consentry.detection.api import figures_for_app, firings_for_app
from consentry.detection.engine import detector
from consentry.detection.rules import DEFAULT_RULES, SUSPEND, THROTTLE
from consentry.graph import limits
from consentry.oauth.models import Application, AppStatus
from consentry.oauth.pairwise import app_scoped_id
from tests.detection_world import (
    ALL_FIELDS,
    CALENDAR_PERMISSIONS,
    QUIZ_PERMISSIONS,
    build_people,
    call,
    install,
    make_calendar,
    make_quiz,
)

# The share of the world the harvest may reach before it is suspended: the default
# `world_share_suspend` rule's own threshold.
MAX_WORLD_SHARE = dict(next(r for r in DEFAULT_RULES if r.name == "world_share_suspend").when)[
    "world_share"
]


@pytest.fixture(autouse=True)
def _fresh_detector():
    cache.clear()
    detector().forget()
    yield
    detector().forget()
    cache.clear()


def test_harvest_is_throttled_then_suspended_and_the_calendar_raises_nothing(db):
    rng = random.Random(7)
    world = build_people(1000, mean_friends=30)
    ids = [p.pk for p in world.people]
    calendar, quiz = make_calendar(), make_quiz()
    calendar_users = rng.sample(ids, 200)
    quiz_users = rng.sample([i for i in ids if i not in set(calendar_users)], 8)
    calendar_tokens = install(world, calendar, CALENDAR_PERMISSIONS, calendar_users)
    quiz_tokens = install(world, quiz, QUIZ_PERMISSIONS, quiz_users)
    client = Client()

    # The calendar: every user reads their birthday and their friends' who use it, and
    # looks one of them up again.
    for _pid, token in calendar_tokens.items():
        assert call(client, token, "/v1/me", fields="name,birthday") == 200
        response = client.get(
            "/v1/me/friends",
            {"fields": "name,birthday", "limit": "100"},
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code == 200
        listed = response.json()["data"]
        if listed:
            assert call(client, token, f"/v1/people/{listed[0]['id']}", fields="birthday") == 200

    # The quiz: every installer pulls everything about everyone they can, then probes
    # people ids (friends of other installers, under this app's id scheme) round after
    # round; when throttled it waits the throttle out and carries on.
    targets = [app_scoped_id(quiz.pk, pid) for pid in rng.sample(ids, 600)]
    statuses: list[int] = []
    suspended_at_call = None
    for _round_number in range(20):
        for _pid, token in quiz_tokens.items():
            status = call(client, token, "/v1/me", fields=ALL_FIELDS)
            statuses.append(status)
            status = call(client, token, "/v1/me/friends", fields=ALL_FIELDS, limit="500")
            statuses.append(status)
            for target in rng.sample(targets, 25):
                statuses.append(call(client, token, f"/v1/people/{target}", fields=ALL_FIELDS))
            if 401 in statuses:
                break
            if 429 in statuses[-27:]:
                limits.lift_throttle(quiz.pk)  # the harvester waits the throttle out
        if 401 in statuses:
            suspended_at_call = statuses.index(401)
            break

    quiz.refresh_from_db()
    assert quiz.status == AppStatus.SUSPENDED
    assert suspended_at_call is not None
    assert 429 in statuses[:suspended_at_call], "throttled before it was suspended"
    firings = firings_for_app(quiz.pk)
    actions = [f.action for f in firings]
    assert THROTTLE in actions
    assert SUSPEND in actions
    assert actions.index(THROTTLE) < actions.index(SUSPEND)
    suspend = next(f for f in firings if f.action == SUSPEND)
    assert suspend.figures
    assert suspend.snapshot["world_share"] < MAX_WORLD_SHARE
    assert figures_for_app(quiz.pk).world_share < MAX_WORLD_SHARE
    # The firing stored the figures that fired it, at least the rule's minimums.
    for f in firings:
        for metric, minimum in f.thresholds.items():
            assert f.figures[metric] >= minimum

    assert firings_for_app(calendar.pk) == []
    assert Application.objects.get(pk=calendar.pk).status == AppStatus.LIVE
    figures = figures_for_app(calendar.pk)
    assert figures.installers == 200
    assert figures.subjects_reached > 150


def test_requested_fields_count_every_released_field_of_a_call_with_mixed_masks(db):
    """The fields a call asked for about listed subjects: one popcount per subject's mask,
    whether a page's masks are all the same (the common case, counted at once) or not."""
    app = make_quiz()
    d = detector()
    d.observe(app.pk, 1, [(10, 0b111), (11, 0b111), (12, 0b111)])  # one mask: 3 x 3
    assert d.figures(app.pk).requested_fields == 9
    d.observe(app.pk, 1, [(13, 0b11), (14, 0b1), (15, 0b11), (16, 0b1111)], withheld_fields=2)
    figures = d.figures(app.pk)
    assert figures.requested_fields == 9 + (2 + 1 + 2 + 4) + 2
    assert figures.withheld_fields == 2
    assert figures.subjects_reached == 7
