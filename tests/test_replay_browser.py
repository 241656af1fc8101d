"""The replay's report page in real Chromium, in English and Dutch: the table, both
matplotlib charts loaded, and no serious axe-core violations. Fails, never skips, without
/usr/bin/chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from consentry.replay import report as report_module
from consentry.replay.models import ReplayReport
from tests.axe import serious_violations
from tests.test_oauth_browser import chromium
from tests.test_replay import PARAMS, sample_figures

SCREENS = Path(settings.VAR_DIR) / "screens"
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_report_page_in_english_and_dutch(live_server: Any, axe_script: str) -> None:
    policies = {key: sample_figures() for key in ("legacy", "consentry", "consentry_optin")}
    ReplayReport.objects.create(report=report_module.build_report(PARAMS, policies, 1.0))
    SCREENS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        for locale, heading in (("en-US", "The Cambridge Analytica replay"),
                                ("nl-NL", "De Cambridge Analytica-naspeling")):  # fmt: skip
            page = browser.new_page(locale=locale, bypass_csp=True)  # axe is injected
            page.goto(f"{live_server.url}/demo/report")
            page.wait_for_load_state("networkidle")
            assert page.locator("h1").inner_text() == heading
            assert page.locator("tbody tr").count() == len(report_module.rows())
            widths = page.eval_on_selector_all(
                "figure img", "imgs => imgs.map(i => i.naturalWidth)"
            )
            assert len(widths) == 2
            assert all(w > 0 for w in widths)
            page.screenshot(path=str(SCREENS / f"replay-report-{locale}.png"), full_page=True)
            assert serious_violations(page, axe_script) == []
            page.close()
