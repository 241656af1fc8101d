"""Real Chromium: staff sign in with their second factor, open a harvest alert, read the
investigation page with its charts, and ban the app; the affected person then finds the
notice (what the app got, when, through which friend) in the privacy center."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from consentry.detection.engine import detector
from consentry.detection.models import RuleSetting
from consentry.incidents.models import Incident
from consentry.ledger.api import blast_radius
from consentry.notices.models import Notice
from consentry.oauth.models import Application, AppStatus
from consentry.web.worker import run_ready_tasks
from tests.axe import serious_violations
from tests.detection_world import (
    ALL_FIELDS,
    QUIZ_PERMISSIONS,
    build_people,
    call,
    install,
    make_quiz,
)
from tests.staff_fixtures import PASSWORD, make_staff, totp_now
from tests.test_oauth_browser import chromium

SCREENS = Path(settings.VAR_DIR) / "screens"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    detector().forget()
    yield
    detector().forget()


def test_staff_open_an_alert_read_the_charts_and_ban_and_the_person_is_told(
    live_server, axe_script
):
    world = build_people(60, mean_friends=10, share=0.6, seed=11)
    quiz = make_quiz()
    quiz.name = "Personality Quiz"
    quiz.save(update_fields=["name"])
    RuleSetting.objects.create(
        rule="overreach", app_id=quiz.pk, when={"requested_fields": 10, "withheld_share": 0.01}
    )
    installers = [p.pk for p in world.people[:5]]
    tokens = install(world, quiz, QUIZ_PERMISSIONS, installers)
    client = Client()
    for token in tokens.values():
        assert call(client, token, "/v1/me", fields=ALL_FIELDS) == 200
        assert call(client, token, "/v1/me/friends", fields=ALL_FIELDS, limit="100") == 200
    detector().sync(quiz.pk)
    reached_through_friends = sorted(set(blast_radius(quiz.pk)) - set(installers))
    assert reached_through_friends
    affected = next(p for p in world.people if p.pk == reached_through_friends[0])
    affected.set_password(PASSWORD)
    affected.save(update_fields=["password"])
    staff, key = make_staff()
    SCREENS.mkdir(parents=True, exist_ok=True)
    base = live_server.url

    violations: dict[str, list[dict[str, Any]]] = {}
    with chromium() as browser:
        # Anyone reports the app, in Dutch, and follows the report by its secret link.
        dutch = browser.new_context(locale="nl-NL", bypass_csp=True).new_page()
        dutch.goto(base + "/report")
        report_form = dutch.inner_text("main")
        violations["report nl"] = serious_violations(dutch, axe_script)
        dutch.select_option("#id_app", str(quiz.pk))
        dutch.fill("#id_description", "De quiz verkoopt de antwoorden.")
        dutch.click("main button[type=submit]")
        dutch.wait_for_selector("text=Uw melding")
        status_url = dutch.url
        violations["report status nl"] = serious_violations(dutch, axe_script)
        dutch.screenshot(path=str(SCREENS / "report-status-nl.png"), full_page=True)

        page = browser.new_page(
            locale="en-US", viewport={"width": 1280, "height": 900}, bypass_csp=True
        )
        page.goto(base + "/report")
        page.click("main button[type=submit]")  # nothing filled in: errors in place
        form_errors = page.inner_text("main")
        violations["report en, with errors"] = serious_violations(page, axe_script)
        page.goto(base + "/accounts/login/?next=/staff/")
        page.fill("input[name=username]", staff.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]:not(.link)")
        page.wait_for_selector("input[name=code]")
        page.fill("input[name=code]", totp_now(key))
        page.click("button[type=submit]:not(.link)")
        page.wait_for_url(base + "/staff/")
        page.click("text=Alerts")
        page.wait_for_selector("table.alerts")
        alerts_text = page.inner_text("table.alerts")
        violations["staff alerts"] = serious_violations(page, axe_script)
        page.screenshot(path=str(SCREENS / "staff-alerts.png"), full_page=True)
        page.click("table.alerts >> text=Personality Quiz")
        page.wait_for_selector("#charts-h")
        page.wait_for_load_state("networkidle")
        chart_sizes = page.eval_on_selector_all(
            "figure.chart img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)"
        )
        investigation = page.inner_text("main")
        violations["staff investigation"] = serious_violations(page, axe_script)
        page.screenshot(path=str(SCREENS / "staff-investigation.png"), full_page=True)
        page.fill("#id_reason", "Harvest of friends' data")
        page.check("#id_confirm")
        page.click("button.danger")
        page.wait_for_selector("#progress-h")
        page.screenshot(path=str(SCREENS / "staff-incident-before.png"), full_page=True)
        violations["staff incident"] = serious_violations(page, axe_script)

    assert "Meld een app" in report_form
    assert "/report/status/" in status_url
    assert "Choose the app or write its name." in form_errors
    assert violations == {key_0: [] for key_0 in violations}
    assert "overreach" in alerts_text
    assert len(chart_sizes) == 4
    assert all(w > 0 for w in chart_sizes), chart_sizes
    assert "Blast radius" in investigation
    assert "Figures now" in investigation
    assert Application.objects.get(pk=quiz.pk).status == AppStatus.BANNED
    assert run_ready_tasks() >= 1  # what the worker of `consentry serve` does
    incident = Incident.objects.get(app_id=quiz.pk)
    assert incident.notified == incident.affected_total == len(blast_radius(quiz.pk))
    notice = Notice.objects.get(person=affected, kind="app_banned")
    friend_names = {p.name for p in world.people if p.pk in installers}
    assert any(f"through your friend {name}" in notice.body for name in friend_names)

    with chromium() as browser:
        page = browser.new_page(
            locale="en-US", viewport={"width": 1280, "height": 900}, bypass_csp=True
        )
        page.goto(base + f"/staff/incidents/{incident.pk}/")  # not staff: the same 404
        not_found = "Not Found" in page.content() or page.title() == ""
        page.goto(base + "/accounts/login/?next=/privacy/notices/")
        page.fill("input[name=username]", affected.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]:not(.link)")
        page.wait_for_load_state("networkidle")
        if "consentry.privacy" in settings.INSTALLED_APPS:
            page.goto(base + "/privacy/notices/")
            inbox = page.inner_text("main")
            page.screenshot(path=str(SCREENS / "privacy-notice.png"), full_page=True)
        else:  # the privacy center's inbox ships with its own branch
            inbox = notice.title + "\n" + notice.body
    assert not_found
    assert "Personality Quiz" in inbox
    assert "was banned" in inbox
