"""Investigation charts: an app's detection figures over time as SVG, drawn by matplotlib
(never hand-drawn), with the rule firings marked."""

from __future__ import annotations

import io
import threading
from datetime import datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

from matplotlib.figure import Figure

from consentry.detection.api import FiringRecord
from consentry.detection.rules import Figures

# (title, [(metric, label)]) per chart; the URL names the chart by its key.
CHARTS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "reach": (
        "People reached and installers",
        [("subjects_reached", "subjects reached"), ("installers", "installers")],
    ),
    "amplification": (
        "Reach amplification (reached ÷ installers)",
        [("amplification", "amplification")],
    ),
    "rates": (
        "Withheld share and not-found rate",
        [("withheld_share", "withheld share"), ("not_found_rate", "not-found rate")],
    ),
    "activity": (
        "Calls and new subjects",
        [("requests_minute", "calls this minute"), ("new_subjects_hour", "new subjects this hour")],
    ),
}
ACTION_COLOURS = {"alert": "#b54708", "throttle": "#c4320a", "suspend": "#b42318"}
_lock = threading.Lock()  # matplotlib's text layout is not thread-safe


def chart_svg(
    key: str, samples: list[tuple[datetime, Figures]], firings: list[FiringRecord]
) -> bytes:
    title, series = CHARTS[key]
    fig = Figure(figsize=(7.5, 2.8), dpi=96)
    ax = fig.add_subplot()
    # matplotlib converts datetimes itself (its stubs ask for floats).
    times: list[Any] = [at for at, _ in samples]
    for metric, label in series:
        ax.plot(times, [getattr(f, metric) for _, f in samples], marker=".", label=label)
    for firing in firings:
        ax.axvline(
            firing.fired_at,  # type: ignore[arg-type]
            color=ACTION_COLOURS.get(firing.action, "#444"),
            linestyle="--",
            linewidth=1,
        )
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if samples:
        ax.legend(fontsize=8, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no figures yet", ha="center", va="center", transform=ax.transAxes)
    fig.autofmt_xdate()
    fig.tight_layout()
    out = io.BytesIO()
    with _lock:
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
