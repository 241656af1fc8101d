"""The staff console for detection and incident response, through HTTP: only verified
staff see it (404 for anyone else), a per-app rule override fires, the investigation page
and its matplotlib charts render, a case, an audit the developer answers, an attestation,
the ban and its incident report (page and JSON); the public abuse report with its secret
status link and staff triage; bad input gets a 4xx with the error in place."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from consentry.detection.engine import detector
from consentry.detection.models import Firing, RuleSetting
from consentry.incidents.models import AbuseReport, AuditRequest, Case, Incident
from consentry.notices.models import Notice
from consentry.oauth.models import AppStatus
from consentry.staff.models import StaffAuditEvent
from tests.detection_world import (
    ALL_FIELDS,
    QUIZ_PERMISSIONS,
    build_people,
    call,
    install,
    make_quiz,
)
from tests.staff_fixtures import staff_client  # noqa: F401

STAFF_PAGES = ["/staff/alerts/", "/staff/apps/", "/staff/incidents/", "/staff/reports/"]


@pytest.fixture(autouse=True)
def _fresh(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    detector().forget()
    yield
    detector().forget()


@pytest.fixture
def quiz_with_alert(db):
    """A quiz with a per-app override that makes its overreach rule fire at once."""
    world = build_people(60, mean_friends=10, share=0.5)
    quiz = make_quiz()
    RuleSetting.objects.create(
        rule="overreach", app_id=quiz.pk, when={"requested_fields": 10, "withheld_share": 0.01}
    )
    tokens = install(world, quiz, QUIZ_PERMISSIONS, [p.pk for p in world.people[:6]])
    client = Client()
    for token in tokens.values():
        assert call(client, token, "/v1/me", fields=ALL_FIELDS) == 200
        assert call(client, token, "/v1/me/friends", fields=ALL_FIELDS, limit="100") == 200
    assert call(client, next(iter(tokens.values())), "/v1/people/nope", fields="name") == 404
    detector().sync(quiz.pk)
    return world, quiz, tokens


def test_staff_pages_are_404_for_everyone_else(quiz_with_alert, make_person):
    _, quiz, _ = quiz_with_alert
    pages = [*STAFF_PAGES, f"/staff/apps/{quiz.pk}/", f"/staff/apps/{quiz.pk}/charts/reach.svg"]
    anonymous = Client()
    person = make_person(password="pw-not-staff-123")
    signed_in = Client()
    signed_in.force_login(person)
    for client in (anonymous, signed_in):
        for page in pages:
            assert client.get(page).status_code == 404, page
        assert (
            client.post(f"/staff/apps/{quiz.pk}/ban/", {"reason": "x", "confirm": "on"}).status_code
            == 404
        )
    quiz.refresh_from_db()
    assert quiz.status == AppStatus.LIVE


def test_a_per_app_override_fires_and_staff_investigate_and_ban(
    quiz_with_alert,
    staff_client,  # noqa: F811
    run_tasks,
):
    world, quiz, tokens = quiz_with_alert
    firing = Firing.objects.get(app_id=quiz.pk, rule="overreach")
    assert firing.thresholds == {"withheld_share": 0.01, "requested_fields": 10.0}
    assert firing.figures["requested_fields"] >= 10

    for page in STAFF_PAGES:
        assert staff_client.get(page).status_code == 200, page
    alerts = staff_client.get("/staff/alerts/").content.decode()
    assert "overreach" in alerts
    assert f"/staff/apps/{quiz.pk}/" in alerts

    page = staff_client.get(f"/staff/apps/{quiz.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    for section in ("Figures now", "Blast radius", "Grants", "Rule firings", "Abuse reports"):
        assert section in html
    for key in ("reach", "amplification", "rates", "activity"):
        svg = staff_client.get(f"/staff/apps/{quiz.pk}/charts/{key}.svg")
        assert svg.status_code == 200
        assert svg["Content-Type"] == "image/svg+xml"
        assert b"<svg" in svg.content
        assert b"matplotlib" in svg.content.lower()
    assert staff_client.get(f"/staff/apps/{quiz.pk}/charts/nope.svg").status_code == 404

    # Open a case and require an audit; the developer answers it in the console.
    assert (
        staff_client.post(f"/staff/apps/{quiz.pk}/case/", {"summary": "overreach"}).status_code
        == 302
    )
    response = staff_client.post(
        f"/staff/apps/{quiz.pk}/audit/", {"questions": "What do you keep?", "days": "0"}
    )
    assert response.status_code == 400
    assert "greater than or equal to 1" in response.content.decode()
    response = staff_client.post(
        f"/staff/apps/{quiz.pk}/audit/", {"questions": "What do you keep?", "days": "7"}
    )
    assert response.status_code == 302
    audit = AuditRequest.objects.get(app_id=quiz.pk)
    developer = world.people[-1]
    quiz.members.add(developer)
    from consentry.developers.models import AppRole

    AppRole.objects.create(application=quiz, person=developer, role="admin")
    dev = Client()
    dev.force_login(developer)
    console = dev.get("/developers/").content.decode()
    assert 'id="open-audits"' in console  # the console says an audit waits
    assert "What do you keep?" in dev.get(f"/developers/audits/{audit.pk}/").content.decode()
    listing = dev.get("/developers/audits/").content.decode()
    assert f"/developers/audits/{audit.pk}/" in listing
    assert quiz.name in listing
    assert dev.post(f"/developers/audits/{audit.pk}/", {"answer": "Everything."}).status_code == 302
    audit.refresh_from_db()
    assert audit.answer == "Everything."
    assert audit.answered_by_id == developer.pk
    stranger = Client()
    stranger.force_login(world.people[-2])
    assert stranger.get(f"/developers/audits/{audit.pk}/").status_code == 404

    # The ban needs its confirmation; then it is one step.
    response = staff_client.post(f"/staff/apps/{quiz.pk}/ban/", {"reason": "harvest"})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    response = staff_client.post(
        f"/staff/apps/{quiz.pk}/ban/", {"reason": "harvest", "confirm": "on"}
    )
    incident = Incident.objects.get(app_id=quiz.pk)
    assert response.status_code == 302
    assert response["Location"] == f"/staff/incidents/{incident.pk}/"
    assert incident.case == Case.objects.get(app_id=quiz.pk)
    assert call(Client(), next(iter(tokens.values())), "/v1/me") == 401
    run_tasks()
    incident.refresh_from_db()
    assert incident.notified == incident.affected_total > 0
    assert Notice.objects.filter(kind="app_banned").count() == incident.affected_total
    page = staff_client.get(f"/staff/incidents/{incident.pk}/").content.decode()
    assert f"{incident.notified}</strong> of <strong>{incident.affected_total}" in page
    assert "print.css" in page
    report = staff_client.get(f"/staff/incidents/{incident.pk}.json").json()
    assert report["people_affected"] == incident.affected_total
    assert report["article_33"]["number_of_data_subjects"] == incident.affected_total
    actions = set(StaffAuditEvent.objects.values_list("action", flat=True))
    assert {"open_case", "require_audit", "ban_app"} <= actions
    assert (
        staff_client.post(
            f"/staff/apps/{quiz.pk}/ban/", {"reason": "again", "confirm": "on"}
        ).status_code
        == 400
    )


def test_clearing_an_alert_lets_the_rule_fire_again(quiz_with_alert, staff_client):  # noqa: F811
    _, quiz, tokens = quiz_with_alert
    firing = Firing.objects.get(app_id=quiz.pk, rule="overreach")
    assert staff_client.post(f"/staff/alerts/{firing.pk}/clear/").status_code == 302
    firing.refresh_from_db()
    assert firing.cleared_at is not None
    assert call(Client(), next(iter(tokens.values())), "/v1/me", fields=ALL_FIELDS) == 200
    assert Firing.objects.filter(app_id=quiz.pk, rule="overreach").count() == 2


def test_abuse_report_with_secret_status_link_and_staff_triage(
    quiz_with_alert,
    staff_client,  # noqa: F811
):
    _, quiz, _ = quiz_with_alert
    public = Client()
    form = public.get("/report")
    assert form.status_code == 200
    assert quiz.name in form.content.decode()
    bad = public.post("/report", {"app": "", "app_name": "", "description": "x\x00y"})
    assert bad.status_code == 400
    assert "Choose the app or write its name." in bad.content.decode()
    assert AbuseReport.objects.count() == 0
    response = public.post(
        "/report",
        {"app": str(quiz.pk), "description": "It sells quiz results.", "contact_email": ""},
    )
    assert response.status_code == 302
    status_url = response["Location"]
    assert status_url.startswith("/report/status/")
    report = AbuseReport.objects.get()
    assert report.app_id == quiz.pk
    assert report.secret_hash not in status_url
    assert "new" in public.get(status_url).content.decode()
    assert public.get("/report/status/not-the-secret/").status_code == 404

    case = Case.objects.create(app_id=quiz.pk)
    huge = "9" * 30
    for path in (f"/staff/apps/{huge}/", f"/staff/incidents/{huge}/", f"/staff/reports/{huge}/"):
        assert staff_client.get(path).status_code == 404
    too_big = staff_client.post(
        f"/staff/reports/{report.pk}/",
        {"status": "confirmed", "case": huge, "reward_amount": "1e400", "staff_note": "\x00"},
    )
    assert too_big.status_code == 400
    assert (
        staff_client.post(
            f"/staff/reports/{report.pk}/",
            {"status": "confirmed", "case": "999999", "reward_amount": "500", "staff_note": ""},
        ).status_code
        == 400
    )
    assert (
        staff_client.post(
            f"/staff/reports/{report.pk}/",
            {
                "status": "confirmed",
                "case": str(case.pk),
                "reward_amount": "500.00",
                "staff_note": "ok",
            },
        ).status_code
        == 302
    )
    report.refresh_from_db()
    assert (report.status, report.case_id, str(report.reward_amount)) == (
        "confirmed",
        case.pk,
        "500.00",
    )
    page = public.get(status_url).content.decode()
    assert "confirmed" in page
    assert "500.00" in page
    investigation = staff_client.get(f"/staff/apps/{quiz.pk}/").content.decode()
    assert f"/staff/reports/{report.pk}/" in investigation


def test_the_abuse_report_form_speaks_dutch(db):
    response = Client().get("/report", HTTP_ACCEPT_LANGUAGE="nl")
    assert response.status_code == 200
    assert "Meld een app" in response.content.decode()
