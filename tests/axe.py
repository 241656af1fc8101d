"""axe-core for the browser tests: installed from npm into the git-ignored var/npm/ on
first use, injected into the page (contexts that inject it need `bypass_csp=True`: the
site's CSP allows only its own scripts), and its serious and critical findings returned.

    from tests.axe import serious_violations  # the fixture axe_script is in conftest.py
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
AXE_VERSION = "4.10.2"
AXE = ROOT / "var" / "npm" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def axe_script() -> str:
    if not AXE.is_file():
        subprocess.run(
            [
                "npm",
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(AXE.parents[2]),
                f"axe-core@{AXE_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return AXE.read_text()


def serious_violations(page: Any, axe: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(content=axe)
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]
