"""Real Chromium through the whole sign-in: log in, untick a permission, come back with
a code whose token lacks it; and the Dutch consent page. Fails, never skips, without
/usr/bin/chromium."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin

import pytest
import requests
from playwright.sync_api import Browser, Route, sync_playwright

from consentry.grants.models import Consent
from consentry.oauth.tokens import access_token_for
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

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("cheap_argon2"),
]
PASSWORD = "correct horse battery staple"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """Real Chromium. Playwright's sync API runs an event loop in this thread, so the
    tests touch the database only before and after this block, never inside it."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in_and_allow(
    browser: Browser, url: str, redirect_uri: str, email: str, untick: tuple[str, ...] = ()
) -> tuple[str, list[str]]:
    """Open the authorization URL, sign in, untick `untick`, press Allow, and return the
    consent page's heading and the URLs the app's redirect endpoint received."""
    returned: list[str] = []

    def app_callback(route: Route) -> None:
        returned.append(route.request.url)
        route.fulfill(status=200, body="back at the app")

    page = browser.new_page(locale="en-US")
    page.route(redirect_uri + "**", app_callback)
    page.goto(url)
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]:not(.link)")
    page.wait_for_selector("#consent-form")
    heading = page.inner_text("h1")
    for permission in untick:
        page.uncheck(f"input[name=permission][value={permission}]")
    page.click("#allow")
    page.wait_for_url(redirect_uri + "**")
    return heading, returned


def test_person_unticks_a_permission_and_the_token_lacks_it(live_server, make_person):
    person = make_person(email="mia@example.test", password=PASSWORD)
    app, secret = make_app(name="Calendar", permissions=["user_birthday", "user_hometown"])
    verifier, challenge = pkce_pair()
    scopes = ["openid", "profile", "user_birthday", "user_hometown"]
    url = urljoin(live_server.url, authorize_url(app, scopes, challenge, state="st-1"))

    email = person.email
    with chromium() as browser:
        heading, returned = sign_in_and_allow(
            browser, url, REDIRECT_URI, email, untick=("user_hometown",)
        )
    assert "Calendar" in heading
    assert returned
    params = redirect_params(returned[-1])
    assert params["state"] == "st-1"

    response = requests.post(
        live_server.url + TOKEN_PATH,
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        headers={"Authorization": basic_auth(app.client_id, secret)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert set(tokens["scope"].split()) == {"openid", "profile", "user_birthday"}
    token = access_token_for(tokens["access_token"])
    assert token is not None
    assert "user_hometown" not in token.scope.split()
    consent = Consent.objects.get(person=person, application=app)
    assert consent.active_scopes() == {"openid", "profile", "user_birthday"}


def test_dutch_consent_page_renders_in_dutch(live_server, make_person):
    person = make_person(email="sem@example.test", password=PASSWORD)
    app, _ = make_app(name="Agenda", permissions=["user_birthday"])
    _verifier, challenge = pkce_pair()
    url = urljoin(live_server.url, authorize_url(app, ["openid", "user_birthday"], challenge))
    email = person.email
    with chromium() as browser:
        page = browser.new_context(locale="nl-NL").new_page()
        page.goto(url)
        login_html = page.content()
        page.fill("input[name=username]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]:not(.link)")
        page.wait_for_selector("#consent-form")
        text = page.inner_text("#consent")
        buttons = (page.inner_text("#allow"), page.inner_text("#deny"))
        lang = page.get_attribute("html", "lang")
    assert "Aanmelden" in login_html
    assert "Agenda wil je Consentry-account gebruiken" in text
    assert "Je verjaardag" in text
    assert buttons == ("Toestaan", "Weigeren")
    assert lang == "nl"


def test_local_app_on_a_loopback_address_gets_its_code(live_server, make_person):
    """An app on the developer's machine (http loopback redirect, RFC 8252 7.3) gets the
    redirect: the consent page's form-action policy allows the app's registered origin."""
    local = "http://127.0.0.1:9/callback"
    person = make_person(email="lotte@example.test", password=PASSWORD)
    app, _ = make_app(name="Local calendar", redirect_uri=local)
    _verifier, challenge = pkce_pair()
    url = urljoin(
        live_server.url,
        authorize_url(app, ["openid", "profile"], challenge, state="st-2", redirect_uri=local),
    )
    email = person.email
    with chromium() as browser:
        _heading, returned = sign_in_and_allow(browser, url, local, email)
    assert returned
    params = redirect_params(returned[-1])
    assert params["state"] == "st-2"
    assert params["code"]


@pytest.mark.parametrize(
    ("locale", "heading", "button"),
    [
        ("en-US", "Sign out of Consentry?", "Sign out"),
        ("nl-NL", "Afmelden bij Consentry?", "Afmelden"),
    ],
)
def test_logout_asks_before_signing_out(
    live_server, make_person, tmp_path, locale, heading, button
):
    """RP-initiated logout shows a confirmation page, in the person's language, and
    signs out only when they press the button."""
    person = make_person(email=f"finn-{locale}@example.test", password=PASSWORD)
    email = person.email
    with chromium() as browser:
        page = browser.new_context(locale=locale).new_page()
        page.goto(live_server.url + "/accounts/login/")
        page.fill("input[name=username]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]:not(.link)")
        page.goto(live_server.url + "/oauth/logout/")
        page.wait_for_selector("#logout-form")
        shown = page.inner_text("h1")
        page.screenshot(path=str(tmp_path / f"logout-{locale}.png"), full_page=True)
        page.click(f"#logout-form button[name=allow]:has-text('{button}')")
        page.wait_for_url(live_server.url + "/")
        page.goto(live_server.url + "/oauth/logout/")
        signed_out = page.url
    assert shown == heading
    assert signed_out == live_server.url + "/"  # nobody to sign out: straight home
