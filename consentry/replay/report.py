"""The replay's report: the three policy runs side by side, as JSON and as a terminal table.

`build_report()` puts the per-policy figures (consentry.replay.figures) together with the
parameters and the opt-in assumption; `rows()` is the one list of rows that the terminal
table, the /demo/report page and the README show, each with a one-sentence explanation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext_lazy as _

from consentry.replay import scenario
from consentry.replay.figures import NOT_AVAILABLE
from consentry.replay.runner import Policy

REPORT_VERSION = 1
OPT_IN_REASONING = (
    "When iOS 14.5 first asked every iPhone user whether apps may track them (May 2021), "
    "Flurry Analytics measured that about 4% of US users and 12% worldwide said yes. "
    "Consentry's friend-sharing opt-in is off by default and no app can prompt for it, so "
    "we assume fewer: 5% of people share their birthday, 2% their whole profile."
)
FIELD_LABELS = {
    "birthday": _("birthday"),
    "likes": _("likes"),
    "hometown": _("hometown"),
    "current_city": _("current city"),
    "relationship_status": _("relationship status"),
    "email": _("email"),
    "posts": _("posts"),
}
FIELD_ROWS: tuple[str, ...] = (
    "birthday",
    "likes",
    "hometown",
    "current_city",
    "relationship_status",
    "email",
    "posts",
)


def build_report(
    params: scenario.Params, results: dict[str, dict[str, Any]], seconds: float
) -> dict[str, Any]:
    """The report document (served at /demo/report.json)."""
    policies = [
        {"key": p.value, "title": p.heading, **results[p.value]}
        for p in Policy
        if p.value in results
    ]
    world = policies[0]["world"] if policies else {}
    return {
        "version": REPORT_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "params": {
            "people": params.people,
            "seed": params.seed,
            "days": params.days,
            "quiz_share": params.quiz_share,
            "calendar_share": params.calendar_share,
            "ordinary_share": params.ordinary_share,
        },
        "opt_in": {
            "birthday_rate": scenario.OPT_IN_BIRTHDAY_RATE,
            "profile_rate": scenario.OPT_IN_PROFILE_RATE,
            "reasoning": OPT_IN_REASONING,
        },
        "world": {k: v for k, v in world.items() if k != "opted_in"},
        "policies": policies,
    }


@dataclass(frozen=True)
class Row:
    label: Any  # lazily translated text
    explain: Any
    value: Callable[[dict[str, Any]], Any]  # policy dict -> number, text or None
    bar: bool = False  # draw a bar against the world's size


def _day(value: Any) -> Any:
    if isinstance(value, int | float):
        return _("day %(day)s") % {"day": f"{value:g}"}
    return value


def _per_field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda p: p["quiz"]["per_field"][name]


def _quiz(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda p: p["quiz"][key]


def _probes(p: dict[str, Any]) -> Any:
    return _("%(found)s of %(tried)s") % {
        "found": p["run"]["probes_found"],
        "tried": p["run"]["probes"],
    }


def _verify(p: dict[str, Any]) -> Any:
    if not p["ledger"]["ok"]:
        return _("FAILED")
    return _("OK, %(entries)s entries") % {"entries": f"{p['ledger']['entries']:,}"}


def rows() -> list[Row]:
    """Every row of the report, in order, with its one-sentence explanation."""
    out = [
        Row(
            _("Quiz installers"),
            _("People who installed the quiz and said yes to it."),
            _quiz("installers"),
        ),
        Row(
            _("People whose data reached the quiz"),
            _("Everyone the quiz received at least one datum about, per the ledger."),
            _quiz("reached"),
            bar=True,
        ),
        Row(
            _("  of whom without their own consent"),
            _("Of those, people who never installed the quiz themselves."),
            _quiz("without_own_consent"),
            bar=True,
        ),
        Row(
            _("  of whom without consent or opt-in"),
            _("Of those, people who had not opted in to friend sharing either."),
            _quiz("without_consent_or_opt_in"),
            bar=True,
        ),
        Row(
            _("Reach amplification"),
            _("People reached per installer: how far one yes carried."),
            _quiz("amplification"),
        ),
    ]
    for name in FIELD_ROWS:
        label = FIELD_LABELS[name]
        out.append(
            Row(
                _("  %(field)s values that left") % {"field": label},
                _("People whose %(field)s the quiz received.") % {"field": label},
                _per_field(name),
            )
        )
    out += [
        Row(
            _("Quiz probes of person ids answered"),
            _("Ids the quiz tried (other installers' friends, made-up ids) that were answered."),
            _probes,
        ),
        Row(
            _("Detection alerted"),
            _("Simulated day harvest detection raised an alert about the quiz."),
            lambda p: _day(p["detection"]["alerted_day"]),
        ),
        Row(
            _("Detection throttled"),
            _("Simulated day detection throttled the quiz's API calls."),
            lambda p: _day(p["detection"]["throttled_day"]),
        ),
        Row(
            _("Detection suspended"),
            _("Simulated day detection suspended the quiz pending review."),
            lambda p: _day(p["detection"]["suspended_day"]),
        ),
        Row(
            _("People notified"),
            _(
                "After the suspension staff banned the quiz: people told exactly what of "
                "theirs it got, and how long (real seconds) that took."
            ),
            lambda p: _notified(p["detection"]),
        ),
        Row(
            _("Friends' birthdays in Birthday Calendar"),
            _(
                "People whose birthday reached the legitimate calendar app without their own "
                "consent (through their opt-in, or under v1.0 through anyone)."
            ),
            lambda p: p["calendar"]["per_field_without_consent"]["birthday"],
        ),
        Row(
            _("ledger verify"),
            _("The whole disclosure ledger recomputed: every leaf, root and signed head."),
            _verify,
        ),
    ]
    return out


def _notified(detection: dict[str, Any]) -> Any:
    people, seconds = detection["notified_people"], detection["notified_within_seconds"]
    if people == NOT_AVAILABLE:
        return NOT_AVAILABLE
    if people is None:
        return _("no ban")
    if isinstance(seconds, int | float):
        return f"{people:,} within {seconds:g} s"
    return f"{people:,}"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if value == NOT_AVAILABLE:
        return str(_("not available"))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def bar(value: Any, total: int, width: int = 10) -> str:
    if not isinstance(value, int | float) or total <= 0:
        return ""
    filled = round(width * min(1.0, value / total))
    return "█" * filled + "·" * (width - filled) + f" {100 * value / total:3.0f}%"


def table(report: dict[str, Any], *, bars: bool = True) -> str:
    """The report as a fixed-width text table (terminal and README)."""
    policies = report["policies"]
    people = report["world"].get("people", 0)
    header = ["", *(p["title"] for p in policies)]
    body: list[list[str]] = []
    for row in rows():
        cells = [str(row.label)]
        for p in policies:
            value = row.value(p)
            text = cell(value)
            if bars and row.bar:
                text = f"{text} {bar(value, people)}"
            cells.append(text)
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("─" * w for w in widths)
    world = report["world"]
    title = (
        f"The Cambridge Analytica replay: {world.get('people', 0):,} people, "
        f"{world.get('friendships', 0):,} friendships, {report['params']['days']} simulated days"
    )
    return "\n".join([title, rule, line(header), rule, *(line(r) for r in body), rule])


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table with each row's explanation (README)."""
    policies = report["policies"]
    out = [
        "| figure | " + " | ".join(p["title"] for p in policies) + " | what it means |",
        "|---|" + "---:|" * len(policies) + "---|",
    ]
    for row in rows():
        values = " | ".join(cell(row.value(p)) for p in policies)
        out.append(f"| {str(row.label).strip()} | {values} | {row.explain} |")
    return "\n".join(out)
