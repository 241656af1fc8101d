"""The one-step ban: the notified set equals the ledger's blast radius exactly, each notice
lists exactly that person's disclosed fields (when, through whom), old tokens fail, and the
incident report's counts match the ledger."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.core.cache import cache
from django.test import Client

from consentry.detection.engine import detector
from consentry.grants.models import Consent
from consentry.grants.permissions import mask_to_fields
from consentry.incidents.actions import AlreadyBanned, do_ban_app
from consentry.incidents.models import Incident
from consentry.incidents.notices import NOTICE_KIND
from consentry.incidents.report import incident_report
from consentry.ledger.api import blast_radius
from consentry.notices.models import Notice
from consentry.oauth.models import AccessToken, AppStatus
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


@pytest.fixture(autouse=True)
def _fresh():
    cache.clear()
    detector().forget()
    yield
    detector().forget()


@pytest.fixture
def harvested(db):
    """A quiz whose installers read everything they could, twice, and a calendar."""
    rng = random.Random(3)
    world = build_people(300, mean_friends=20, share=0.3)
    ids = [p.pk for p in world.people]
    quiz, calendar = make_quiz(), make_calendar()
    quiz_users = rng.sample(ids, 12)
    quiz_tokens = install(world, quiz, QUIZ_PERMISSIONS, quiz_users)
    calendar_tokens = install(world, calendar, CALENDAR_PERMISSIONS, rng.sample(ids, 40))
    client = Client()
    for _ in range(2):
        for token in quiz_tokens.values():
            assert call(client, token, "/v1/me", fields=ALL_FIELDS) == 200
            assert call(client, token, "/v1/me/friends", fields=ALL_FIELDS, limit="500") == 200
    for token in calendar_tokens.values():
        assert call(client, token, "/v1/me/friends", fields="name,birthday") == 200
    return world, quiz, calendar, quiz_tokens, calendar_tokens


def test_ban_notifies_exactly_the_blast_radius_with_each_persons_fields(harvested, run_tasks):
    world, quiz, _calendar, quiz_tokens, calendar_tokens = harvested
    radius = blast_radius(quiz.pk)
    assert len(radius) > len(quiz_tokens)  # friends who opted in were reached too
    names = {p.pk: p.name for p in world.people}

    incident = do_ban_app(quiz, None, "harvest")
    # At once, before any background work: the app is banned, grants and tokens are gone.
    quiz.refresh_from_db()
    assert quiz.status == AppStatus.BANNED
    assert not AccessToken.objects.filter(application=quiz).exists()
    assert not Consent.objects.filter(application=quiz, revoked_at__isnull=True).exists()
    client = Client()
    for token in quiz_tokens.values():
        assert call(client, token, "/v1/me") == 401
    # Other apps are untouched.
    assert call(client, next(iter(calendar_tokens.values())), "/v1/me") == 200

    assert run_tasks() >= 1
    notices = list(Notice.objects.filter(kind=NOTICE_KIND))
    assert sorted(n.person_id for n in notices) == sorted(radius)
    for notice in notices:
        fields = set(notice.data["fields"])
        assert fields == set(mask_to_fields(radius[notice.person_id]))
        assert notice.data["app"] == quiz.name
        for _field, info in notice.data["fields"].items():
            through = info["first_through"]
            if notice.person_id in quiz_tokens:
                assert through in ("self", *names.values())
            else:  # reached only through a friend who installed the quiz
                assert through in {names[i] for i in quiz_tokens}
                assert f"through your friend {through}" in notice.body
            assert info["first_at"] <= info["last_at"]

    incident.refresh_from_db()
    assert incident.status == Incident.Status.NOTIFIED
    assert incident.affected_total == incident.notified == len(radius)
    report = incident_report(incident)
    per_field = Counter(f for mask in radius.values() for f in mask_to_fields(mask))
    assert {c["field"]: c["people"] for c in report["categories"]} == dict(per_field)
    assert report["people_affected"] == len(radius)
    assert report["article_33"]["number_of_data_subjects"] == len(radius)
    assert any("banned" in e["event"] for e in report["timeline"])

    with pytest.raises(AlreadyBanned):
        do_ban_app(quiz, None, "again")


def test_notifying_again_resumes_and_sends_nobody_a_second_notice(harvested, run_tasks):
    _, quiz, *_ = harvested
    incident = do_ban_app(quiz, None, "harvest")
    run_tasks()
    from consentry.incidents.tasks import notify_incident

    assert notify_incident.call(incident.pk) == 0
    assert Notice.objects.filter(kind=NOTICE_KIND).count() == len(blast_radius(quiz.pk))


def test_a_dutch_speaker_is_told_in_dutch(harvested, run_tasks):
    _world, quiz, _, quiz_tokens, _ = harvested
    person_id = next(iter(quiz_tokens))
    from consentry.people.models import Person

    Person.objects.filter(pk=person_id).update(language="nl")
    do_ban_app(quiz, None, "harvest")
    run_tasks()
    notice = Notice.objects.get(kind=NOTICE_KIND, person_id=person_id)
    assert "verbannen" in notice.title
