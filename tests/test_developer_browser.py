"""The developer platform's story in real Chromium: a developer registers an app, requests
user_birthday and user_posts (signing the data-use agreement) and invites a tester; the
tester can authorize it in development mode and a stranger cannot; staff, signed in with
TOTP, approve user_birthday and reject user_posts; the app goes live; the consent screen
then offers only user_birthday to people without a role. Fails, never skips, without
/usr/bin/chromium. Set CONSENTRY_SCREENSHOTS=DIR to keep a PNG of every page."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urljoin

import pytest
from playwright.sync_api import Browser, Page

from consentry.developers.models import PermissionDeclaration, ReviewDecision, SignedAgreement
from consentry.oauth.models import Application
from consentry.staff.models import StaffAuditEvent
from tests.oauth_flow import REDIRECT_URI, authorize_url, cheap_argon2, pkce_pair  # noqa: F401
from tests.staff_fixtures import PASSWORD as STAFF_PASSWORD
from tests.staff_fixtures import make_staff, totp_now
from tests.test_oauth_browser import PASSWORD, chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("cheap_argon2"),
]
SHOTS = os.environ.get("CONSENTRY_SCREENSHOTS", "")
SCOPES = ["openid", "profile", "user_birthday", "user_posts"]


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def sign_in(browser: Browser, base: str, email: str, password: str = PASSWORD) -> Page:
    page = browser.new_context(locale="en-US").new_page()
    page.goto(base + "/accounts/login/?next=/developers/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]:not(.link)")
    return page


def consent_rows(page: Page, url: str) -> list[str] | None:
    """Open the authorization URL; the permissions the consent screen offers, or None
    when the request is refused with an error page."""
    page.goto(url)
    if page.locator("#oauth-error").count():
        return None
    page.wait_for_selector("#consent-form")
    return page.eval_on_selector_all(
        "#consent-form .perm", "rows => rows.map(r => r.dataset.permission)"
    )


def test_register_review_and_go_live_story(live_server, make_person):
    make_person(email="dev@example.test", password=PASSWORD, name="Dana Dev")
    make_person(email="tess@example.test", password=PASSWORD, name="Tess Tester")
    make_person(email="sam@example.test", password=PASSWORD, name="Sam Stranger")
    staff, key = make_staff("staff@example.test")
    base = live_server.url
    _verifier, challenge = pkce_pair()

    with chromium() as browser:
        # The developer registers an app.
        dev = sign_in(browser, base, "dev@example.test")
        dev.wait_for_selector("#terms-form")
        shot(dev, "01-console-terms")
        dev.check("input[name=accept]")
        dev.click("#terms-form button[type=submit]")
        dev.click("#new-app")
        dev.fill("input[name=name]", "Birthday Calendar")
        dev.fill("textarea[name=description]", "Your friends' birthdays in your calendar")
        dev.fill("input[name=website]", "https://cal.example.test")
        dev.fill("input[name=privacy_policy_url]", "https://cal.example.test/privacy")
        dev.fill("textarea[name=redirect_uris]", REDIRECT_URI)
        dev.fill("input[name=deauthorize_callback_url]", "https://cal.example.test/deauth")
        dev.fill("input[name=data_deletion_callback_url]", "https://cal.example.test/delete")
        shot(dev, "02-register")
        dev.click("#register")
        client_id = dev.inner_text("#client-id")
        assert len(dev.inner_text("#client-secret")) > 30
        shot(dev, "03-secret-once")
        dev.click("#to-app")
        app_url = dev.url

        # Declarations: user_birthday and user_posts, signing the agreement.
        dev.click("#declare")
        dev.check("input[name=request_user_birthday]")
        dev.fill(
            "input[name=purpose_user_birthday]", "Put your friends' birthdays in your calendar"
        )
        dev.fill("input[name=retention_user_birthday]", "365")
        dev.check("input[name=request_user_posts]")
        dev.fill("input[name=purpose_user_posts]", "Show your posts on calendar days")
        dev.fill("input[name=retention_user_posts]", "30")
        dev.click("#submit-declarations")
        assert dev.locator("#id_signer_name + .errorlist, .errorlist").count() >= 1  # unsigned
        dev.fill("input[name=signer_name]", "Dana Dev")
        dev.fill("textarea[name=test_instructions]", "Sign in as the tester; open the calendar.")
        shot(dev, "04-declarations")
        dev.click("#submit-declarations")
        dev.wait_for_selector("#declarations table")

        # Invite the tester.
        dev.fill("#invite-form input[name=email]", "tess@example.test")
        dev.select_option("#invite-form select[name=role]", "tester")
        dev.click("#invite")
        shot(dev, "05-app-development")

        # The tester accepts and authorizes the app in development mode, any permission.
        tester = sign_in(browser, base, "tess@example.test")
        tester.click("#invitations button")
        tester.wait_for_selector("#app-overview")
        tester.route(REDIRECT_URI + "**", lambda route: route.fulfill(status=200, body="app"))
        url = urljoin(base, authorize_url(_app_stub(client_id), SCOPES, challenge))
        assert consent_rows(tester, url) == SCOPES
        shot(tester, "06-consent-tester-development")

        # A stranger cannot use an app in development.
        stranger = sign_in(browser, base, "sam@example.test")
        assert consent_rows(stranger, url) is None
        shot(stranger, "07-stranger-refused")

        # Staff: password, then the TOTP code, then the review.
        desk = sign_in(browser, base, "staff@example.test", STAFF_PASSWORD)
        desk.wait_for_selector("input[name=code]")
        desk.fill("input[name=code]", totp_now(key))
        desk.click("form button[type=submit]:not(.link)")
        desk.goto(base + "/staff/reviews/")
        shot(desk, "08-staff-reviews")
        desk.click("text=Birthday Calendar")
        desk.check("#decide-user_birthday input[value=approve]")
        desk.fill("#decide-user_birthday input[type=text]", "Birthdays fit a calendar")
        desk.check("#decide-user_posts input[value=reject]")
        desk.fill("#decide-user_posts input[type=text]", "A calendar needs no posts")
        shot(desk, "09-staff-review")
        desk.click("#record-decisions")
        desk.wait_for_selector("#decision-history li")

        # The developer sees the reasons and goes live.
        dev.goto(app_url)
        decisions = dev.inner_text("#declarations")
        assert "A calendar needs no posts" in decisions
        dev.click("#go-live")
        assert dev.inner_text("#app-mode") == "live"
        shot(dev, "10-app-live")

        # Live: someone without a role is offered only what review approved.
        assert consent_rows(stranger, url) == ["openid", "profile", "user_birthday"]
        shot(stranger, "11-consent-live-stranger")
        docs = browser.new_page()
        docs.goto(base + "/developers/docs")
        assert "verify_consentry_signature" in docs.inner_text("#verify-example")
        shot(docs, "12-docs")

    app = Application.objects.get(client_id=client_id)
    assert app.status == "live"
    assert app.approved_permissions == ["user_birthday"]
    assert dict(
        PermissionDeclaration.objects.filter(application=app).values_list("permission", "status")
    ) == {"user_birthday": "approved", "user_posts": "rejected"}
    assert SignedAgreement.objects.get(application=app).signer_name == "Dana Dev"
    assert ReviewDecision.objects.filter(application=app, staff=staff).count() == 2
    assert StaffAuditEvent.objects.filter(staff=staff, action="app.review").count() == 1


def _app_stub(client_id: str) -> Application:
    """authorize_url() needs only the client id; the database is not touched while the
    browser runs."""
    return Application(client_id=client_id)
