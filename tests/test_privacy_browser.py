"""The privacy center in real Chromium: the story of the issue, in English and in Dutch,
and axe-core on every page. axe-core comes from npm, installed by this module into the
git-ignored var/npm/ on first use. Fails, never skips, without /usr/bin/chromium or npm."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from playwright.sync_api import Browser, Page, Route

from consentry.people.actions import do_add_friendship
from consentry.people.fields import FIELD_BIT
from tests.axe import serious_violations
from tests.oauth_flow import (
    REDIRECT_URI,
    TOKEN_PATH,
    authorize_url,
    basic_auth,
    cheap_argon2,  # noqa: F401
    make_app,
    pkce_pair,
    redirect_params,
)
from tests.test_oauth_browser import PASSWORD, chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("cheap_argon2"),
]
PAGES = (
    "/privacy/",
    "/privacy/apps/",
    "/privacy/apps/?tab=removed",
    "/privacy/activity/",
    "/privacy/friends/",
    "/privacy/sharing/",
    "/privacy/export/",
    "/privacy/notices/",
    "/privacy/account/",
)


def sign_in(page: Page, base: str, email: str, next_path: str = "/privacy/") -> None:
    page.goto(f"{base}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]:not(.link)")
    page.wait_for_url(f"{base}{next_path}")


def choose_language(page: Page, lang: str) -> None:
    page.click(f"button[name=language][value={lang}]")
    page.wait_for_load_state()


def api(base: str, token: str, path: str) -> requests.Response:
    return requests.get(base + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)


TEXT = {
    "en": {"through": "through your friend Bob Jansen", "routes": "Friends' routes"},
    "nl": {"through": "via je vriend(in) Bob Jansen", "routes": "Routes via vrienden"},
}


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_story_grant_read_see_close_route_remove(live_server, make_person, lang, axe_script):
    """Bob grants an app; it reads Bob's and his friend Alice's data; Alice sees the read
    through Bob and closes his route; the app's next read omits her; Bob removes the app;
    its old token gets 401."""
    base = live_server.url
    bob = make_person(name="Bob Jansen", email="bob@example.test", password=PASSWORD)
    alice = make_person(
        name="Alice de Vries",
        email="alice@example.test",
        password=PASSWORD,
        birthday=dt.date(1990, 1, 3),
        friend_share_mask=FIELD_BIT["birthday"],
    )
    do_add_friendship(bob, alice)
    app, secret = make_app(
        name="Birthday Calendar",
        permissions=["user_birthday", "user_friends"],
        purposes={"user_friends": "Show your friends' birthdays"},
    )
    verifier, challenge = pkce_pair()
    scopes = ["openid", "profile", "user_birthday", "user_friends"]
    url = urljoin(base, authorize_url(app, scopes, challenge, state="s"))
    returned: list[str] = []
    texts: dict[str, str] = {}
    violations: dict[str, list[dict[str, Any]]] = {}

    def app_callback(route: Route) -> None:
        returned.append(route.request.url)
        route.fulfill(status=200, body="back at the app")

    with chromium() as browser:
        # 1. Bob grants the app on the consent screen, in his language.
        bob_page = _context(browser, lang).new_page()
        bob_page.route(REDIRECT_URI + "**", app_callback)
        sign_in(bob_page, base, "bob@example.test")
        if lang == "nl":
            choose_language(bob_page, "nl")
        bob_page.goto(url)
        bob_page.wait_for_selector("#consent-form")
        texts["consent"] = bob_page.inner_text("#consent")
        bob_page.click("#allow")
        bob_page.wait_for_url(REDIRECT_URI + "**")
        code = redirect_params(returned[-1])["code"]
        token = requests.post(
            base + TOKEN_PATH,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
            headers={"Authorization": basic_auth(app.client_id, secret)},
            timeout=10,
        ).json()["access_token"]

        # 2. The app reads Bob's and his friend's data.
        assert api(base, token, "/v1/me?fields=name").status_code == 200
        first = api(base, token, "/v1/me/friends?fields=birthday").json()
        texts["first_read"] = str(first)

        # 3. Alice signs in and sees the read through Bob.
        alice_page = _context(browser, lang).new_page()
        sign_in(alice_page, base, "alice@example.test")
        if lang == "nl":
            choose_language(alice_page, "nl")
        alice_page.goto(base + "/privacy/activity/")
        texts["activity"] = alice_page.inner_text("#timeline")
        violations["activity"] = serious_violations(alice_page, axe_script)

        # 4. Alice closes Bob's route.
        alice_page.goto(base + "/privacy/friends/")
        texts["friends_heading"] = alice_page.inner_text("h1")
        violations["friends"] = serious_violations(alice_page, axe_script)
        alice_page.click(f"#friend-{bob.pk} button.close-route")
        alice_page.wait_for_load_state()

        # 5. The app's next read omits her.
        second = api(base, token, "/v1/me/friends?fields=birthday").json()

        # 6. Bob removes the app: 7. its old token gets 401 on the next call.
        bob_page.goto(base + "/privacy/apps/")
        violations["apps"] = serious_violations(bob_page, axe_script)
        bob_page.click(f"#remove-{app.pk}")
        bob_page.wait_for_load_state()
        after = api(base, token, "/v1/me?fields=name")
        texts["removed"] = bob_page.content()

    assert "1990-01-03" in texts["first_read"]
    assert TEXT[lang]["through"] in texts["activity"]
    assert texts["friends_heading"] == TEXT[lang]["routes"]
    assert second["data"] == []
    assert second["meta"]["withheld_subjects"] == 1
    assert after.status_code == 401
    assert all(not v for v in violations.values()), violations
    if lang == "nl":
        assert "Over Birthday Calendar" in texts["consent"]
        assert "Je vrienden zien het" in texts["consent"]
    else:
        assert "About Birthday Calendar" in texts["consent"]
        assert "Your friends will see it" in texts["consent"]


def _context(browser: Browser, lang: str) -> Any:
    return browser.new_context(locale="nl-NL" if lang == "nl" else "en-US", bypass_csp=True)


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_axe_finds_no_serious_violation_on_any_privacy_page(
    live_server, make_person, lang, axe_script
):
    base = live_server.url
    bob = make_person(name="Bob Jansen", email="bob@example.test", password=PASSWORD)
    alice = make_person(name="Alice", email="alice@example.test", password=PASSWORD)
    do_add_friendship(bob, alice)
    app, _ = make_app(name="Birthday Calendar", permissions=["user_birthday"])
    results: dict[str, list[dict[str, Any]]] = {}
    with chromium() as browser:
        page = _context(browser, lang).new_page()
        sign_in(page, base, "bob@example.test")
        if lang == "nl":
            choose_language(page, "nl")
        for path in (*PAGES, f"/apps/{app.pk}"):
            response = page.goto(base + path)
            assert response is not None, path
            assert response.status == 200, path
            assert page.get_attribute("html", "lang") == lang
            results[path] = serious_violations(page, axe_script)
    assert all(not v for v in results.values()), results
