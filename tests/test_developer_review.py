"""Staff review at /staff/reviews/: only verified staff (TOTP) see it, every decision is
recorded with who, when and why, and the developer sees the reason."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from consentry.developers.actions import Declaration, do_register_app
from consentry.developers.models import ReviewDecision
from consentry.staff.models import StaffAuditEvent
from tests import staff_fixtures
from tests.oauth_flow import REDIRECT_URI, cheap_argon2  # noqa: F401
from tests.staff_fixtures import PASSWORD, make_staff

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]
staff_client = staff_fixtures.staff_client


def quiz_app():
    app, _secret = do_register_app(
        owner=None,
        name="Quiz",
        redirect_uris=[REDIRECT_URI],
        declarations=[
            Declaration("user_birthday", "Your star sign", 30),
            Declaration("user_posts", "Personality from your posts", 30),
            Declaration("email", "Send your results", 30),
        ],
        signer_name="Quiz Developer",
        test_instructions="Take the quiz as the tester.",
    )
    return app


def staff_urls(app_id: int) -> list[str]:
    return [reverse("staff-reviews"), reverse("staff-review", args=[app_id])]


def test_every_review_url_is_404_without_staff_and_second_factor(make_person):
    app = quiz_app()
    anonymous = Client()
    person = Client()
    person.force_login(make_person(), backend="django.contrib.auth.backends.ModelBackend")
    staff, _key = make_staff()
    password_only = Client()
    response = password_only.post(
        "/accounts/login/", {"username": staff.email, "password": PASSWORD}
    )
    assert response.status_code == 302
    for client in (anonymous, person, password_only):
        for url in staff_urls(app.pk):
            assert client.get(url).status_code == 404, url
            assert client.post(url, {"decision_user_birthday": "approve"}).status_code == 404, url
    app.refresh_from_db()
    assert app.approved_permissions == []


def test_staff_approve_and_reject_with_reasons_recorded_and_audited(staff_client, make_person):
    app = quiz_app()
    listing = staff_client.get(reverse("staff-reviews"))
    assert listing.status_code == 200
    assert b"Quiz" in listing.content
    page = staff_client.get(reverse("staff-review", args=[app.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Take the quiz as the tester." in html
    assert "Personality from your posts" in html
    assert app.signed_agreements.get().sha256 in html
    assert 'id="decide-email"' not in html  # basic: no review

    refused = staff_client.post(
        reverse("staff-review", args=[app.pk]), {"decision_user_posts": "reject"}
    )
    assert refused.status_code == 400
    assert b"reason" in refused.content
    assert not ReviewDecision.objects.exists()

    response = staff_client.post(
        reverse("staff-review", args=[app.pk]),
        {
            "decision_user_birthday": "approve",
            "reason_user_birthday": "Star signs are fine",
            "decision_user_posts": "reject",
            "reason_user_posts": "A quiz needs no posts",
        },
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.approved_permissions == ["user_birthday"]
    decisions = {d.permission: d for d in ReviewDecision.objects.filter(application=app)}
    assert decisions["user_posts"].approved is False
    assert decisions["user_posts"].reason == "A quiz needs no posts"
    assert decisions["user_birthday"].staff == staff_client.staff
    event = StaffAuditEvent.objects.get(action="app.review")
    assert event.staff == staff_client.staff
    assert event.target == f"app:{app.pk}"
    assert event.details["user_posts"] == {"approved": False, "reason": "A quiz needs no posts"}
    assert app.review_requests.get().closed_at is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("decision_user_birthday", "maybe"),
        ("reason_user_birthday", "x" * 3000),
        ("reason_user_birthday", "nul\x00"),
    ],
)
def test_bad_review_input_is_a_400_in_place(staff_client, field, value):
    app = quiz_app()
    data = {"decision_user_birthday": "approve", field: value}
    response = staff_client.post(reverse("staff-review", args=[app.pk]), data)
    assert response.status_code == 400
    app.refresh_from_db()
    assert app.approved_permissions == []


def test_unknown_app_is_404_for_staff_too(staff_client):
    assert staff_client.get(reverse("staff-review", args=[987654])).status_code == 404


def _staff_paths() -> list[str]:
    """Every URL pattern under /staff/, whoever added it, with sample arguments."""
    paths: list[str] = []

    def walk(patterns: list, prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern) and route.startswith("staff/"):
                for kind, sample in (("int", "1"), ("str", "x"), ("slug", "x"), ("uuid", "0" * 32)):
                    route = re.sub(rf"<{kind}:\w+>", sample, route)
                paths.append("/" + route.lstrip("^").rstrip("$"))

    walk(get_resolver().url_patterns, "")
    return paths


def test_every_staff_url_refuses_non_staff_and_staff_without_totp(make_person):
    quiz_app()
    paths = _staff_paths()
    assert "/staff/reviews/" in paths
    person = Client()
    person.force_login(make_person(), backend="django.contrib.auth.backends.ModelBackend")
    staff, _key = make_staff()
    without_totp = Client()
    credentials = {"username": staff.email, "password": PASSWORD}
    assert without_totp.post("/accounts/login/", credentials).status_code == 302
    for client in (Client(), person, without_totp):
        for path in paths:
            assert client.get(path).status_code == 404, path
            assert client.post(path).status_code == 404, path
