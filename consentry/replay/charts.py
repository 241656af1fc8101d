"""The report's charts, drawn by matplotlib as SVG (no hand-drawn SVG)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from consentry.replay.report import FIELD_ROWS

COLORS = {"installers": "#4c72b0", "opt_in": "#55a868", "no_consent": "#c44e52"}
CHARTS = ("reach", "fields")


def _svg(figure: Figure) -> bytes:
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight")
    plt.close(figure)
    return out.getvalue().encode()


def reach_chart(report: dict[str, Any]) -> bytes:
    """Per policy: the people whose data reached the quiz, split by why."""
    policies = report["policies"]
    titles = [p["title"] for p in policies]
    installers = [p["quiz"]["installers"] for p in policies]
    opt_in = [p["quiz"]["via_opt_in"] for p in policies]
    without = [p["quiz"]["without_consent_or_opt_in"] for p in policies]
    figure, axes = plt.subplots(figsize=(7.5, 3.2))
    axes.barh(titles, installers, color=COLORS["installers"], label="installed the quiz")
    axes.barh(titles, opt_in, left=installers, color=COLORS["opt_in"], label="opted in")
    left = [a + b for a, b in zip(installers, opt_in, strict=True)]
    axes.barh(titles, without, left=left, color=COLORS["no_consent"], label="never asked")
    people = report["world"].get("people", 0)
    if people:
        axes.axvline(people, color="#333333", linestyle=":", linewidth=1)
        axes.text(people, -0.6, f" world: {people:,}", va="top", fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("people whose data reached the Personality Quiz")
    axes.legend(loc="lower right", fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def fields_chart(report: dict[str, Any]) -> bytes:
    """Per field: how many people's values left, per policy."""
    policies = report["policies"]
    figure, axes = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / max(1, len(policies))
    palette = ["#c44e52", "#4c72b0", "#55a868"]
    for i, policy in enumerate(policies):
        values = [policy["quiz"]["per_field"][f] for f in FIELD_ROWS]
        axes.bar(
            [x + i * width for x in range(len(FIELD_ROWS))],
            values,
            width=width,
            label=policy["title"],
            color=palette[i % len(palette)],
        )
    axes.set_xticks(
        [x + width * (len(policies) - 1) / 2 for x in range(len(FIELD_ROWS))],
        [f.replace("_", " ") for f in FIELD_ROWS],
        rotation=20,
        fontsize=8,
    )
    axes.set_ylabel("people whose value left")
    axes.legend(fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def chart(name: str, report: dict[str, Any]) -> bytes:
    return {"reach": reach_chart, "fields": fields_chart}[name](report)
