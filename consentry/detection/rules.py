"""Harvest detection rules (docs/detection.md): pure data
and pure functions, no Django.

An app's figures (`Figures`) are measured online on every Graph API call
(consentry.detection.engine). A `Rule` fires when ALL its conditions hold (each is
"metric >= minimum"); its action is one of:

- `alert`: a firing for staff to look at (the staff console lists it);
- `throttle`: the app's Graph API calls are refused with 429 for `throttle_seconds`
  (release rule 4, "not throttled by harvest detection", enforced by consentry.graph.limits);
- `suspend`: the app is suspended pending review (release rule 1 refuses it at once).

THE DEFAULTS ARE `DEFAULT_RULES` BELOW, the one place where they are written down. They are
tuned so that a harvest (installers pulling every field of every friend and probing
people ids, as in the replay) trips them, and a birthday calendar used by thousands, which
reads name and birthday of the friends who also use it, does not: see docs/detection.md
and tests/test_detection_harvest.py. Operators override thresholds globally or per app
(consentry.detection.models.RuleSetting); `rules_with_overrides` merges them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, fields, replace
from typing import Any

ALERT = "alert"
THROTTLE = "throttle"
SUSPEND = "suspend"
ACTIONS = (ALERT, THROTTLE, SUSPEND)
SEVERITY = {ALERT: 1, THROTTLE: 2, SUSPEND: 3}


@dataclass(frozen=True, slots=True)
class Figures:
    """An app's detection figures at one moment. Rates are 0.0 while their volume is 0.

    - installers: people with an active grant to the app (at least those seen calling)
    - subjects_reached: distinct people the app received any datum about (exact)
    - amplification: subjects_reached / installers
    - requested_fields / withheld_fields: fields asked for about listed subjects, and how
      many of those the release rule withheld; withheld_share = withheld / requested
    - person_lookups / not_found: calls to /v1/people/{id}, and how many got 404;
      not_found_rate = not_found / person_lookups (enumeration, probing ids)
    - new_subjects_hour / new_subjects_day: subjects reached for the first time in the
      current hour / UTC day
    - requests_minute: calls in the current minute; requests_per_installer_minute the same
      per installer
    - world_share: subjects_reached / people on the platform
    """

    calls: int = 0
    installers: int = 0
    subjects_reached: int = 0
    amplification: float = 0.0
    requested_fields: int = 0
    withheld_fields: int = 0
    withheld_share: float = 0.0
    person_lookups: int = 0
    not_found: int = 0
    not_found_rate: float = 0.0
    new_subjects_hour: int = 0
    new_subjects_day: int = 0
    requests_minute: int = 0
    requests_per_installer_minute: float = 0.0
    world: int = 0
    world_share: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figures:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


METRICS: tuple[str, ...] = tuple(f.name for f in fields(Figures))


def figures_of(
    *,
    calls: int,
    installers: int,
    subjects_reached: int,
    requested_fields: int,
    withheld_fields: int,
    person_lookups: int,
    not_found: int,
    new_subjects_hour: int,
    new_subjects_day: int,
    requests_minute: int,
    world: int,
) -> Figures:
    """Figures with the ratios derived from the counts."""
    installers = max(installers, 0)
    return Figures(
        calls=calls,
        installers=installers,
        subjects_reached=subjects_reached,
        amplification=subjects_reached / installers if installers else float(subjects_reached),
        requested_fields=requested_fields,
        withheld_fields=withheld_fields,
        withheld_share=withheld_fields / requested_fields if requested_fields else 0.0,
        person_lookups=person_lookups,
        not_found=not_found,
        not_found_rate=not_found / person_lookups if person_lookups else 0.0,
        new_subjects_hour=new_subjects_hour,
        new_subjects_day=new_subjects_day,
        requests_minute=requests_minute,
        requests_per_installer_minute=requests_minute / installers if installers else 0.0,
        world=world,
        world_share=subjects_reached / world if world else 0.0,
    )


@dataclass(frozen=True, slots=True)
class Rule:
    """Fires when every `when` metric is at least its minimum."""

    name: str
    action: str
    when: tuple[tuple[str, float], ...]
    description: str = ""
    throttle_seconds: int = 0
    enabled: bool = True

    def holds(self, figures: Figures) -> bool:
        # A plain loop: checked for every rule on every Graph API call, and a generator
        # in all() cost more than the comparisons. `not >=`, not `<`: a NaN minimum (an
        # operator's JSON may hold one) never holds, as it never did.
        if not self.enabled:
            return False
        for metric, minimum in self.when:  # noqa: SIM110
            if not getattr(figures, metric) >= minimum:
                return False
        return True

    def figures_that_fired(self, figures: Figures) -> dict[str, float | int]:
        return {m: getattr(figures, m) for m, _ in self.when}


# --- The defaults: the one documented place ---------------------------------------------
#
# Why these numbers. A birthday calendar's installers read their own profile and the
# friends who also use it (name, birthday): amplification stays near 1 (it reaches its own
# installers), almost nothing it asks for is withheld, it never probes ids, and each
# installer makes a handful of calls. A harvest asks every field of every friend (most of
# it withheld by the release rule: withheld share well above half), probes people ids it
# was never given (404s), calls far more per installer, and, where friends opted in,
# reaches many more people than it has installers. Volume minimums keep a handful of
# calls from firing anything.
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "overreach",
        ALERT,
        (("withheld_share", 0.5), ("requested_fields", 2_000)),
        "More than half of the fields it asks for are withheld: it asks for more than its "
        "installers and their friends granted.",
    ),
    Rule(
        "enumeration",
        ALERT,
        (("not_found_rate", 0.05), ("person_lookups", 50)),
        "Probing people ids: over 5% of /v1/people/{id} lookups are unknown or forbidden.",
    ),
    Rule(
        "enumeration_throttle",
        THROTTLE,
        (("not_found_rate", 0.2), ("not_found", 100)),
        "Sustained id probing: 100 or more 404s, over 20% of lookups.",
        throttle_seconds=900,
    ),
    Rule(
        "enumeration_suspend",
        SUSPEND,
        (("not_found_rate", 0.2), ("not_found", 400)),
        "Id probing went on after the throttle: 400 or more 404s, over 20% of lookups.",
    ),
    Rule(
        "amplification",
        ALERT,
        (("amplification", 5.0), ("subjects_reached", 500)),
        "Reaches five times more people than it has installers.",
    ),
    Rule(
        "amplification_throttle",
        THROTTLE,
        (("amplification", 20.0), ("subjects_reached", 2_000)),
        "Reaches twenty times more people than it has installers.",
        throttle_seconds=900,
    ),
    Rule(
        "world_share_suspend",
        SUSPEND,
        (("world_share", 0.05), ("amplification", 5.0)),
        "Reached 5% of the platform's people, five times more than its installers.",
    ),
    Rule(
        "call_rate",
        ALERT,
        (("requests_per_installer_minute", 60.0), ("requests_minute", 600)),
        "More than 60 calls per installer in one minute.",
    ),
    Rule(
        "new_subjects_burst",
        ALERT,
        (("new_subjects_hour", 50_000), ("amplification", 3.0)),
        "50,000 people reached for the first time within an hour, over three times its installers.",
    ),
)

RULE_NAMES: frozenset[str] = frozenset(r.name for r in DEFAULT_RULES)


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's change to one rule, globally (app_id None) or for one app."""

    rule: str
    app_id: int | None = None
    enabled: bool | None = None
    when: Mapping[str, float] = field(default_factory=dict)
    throttle_seconds: int | None = None


def rules_with_overrides(
    defaults: Iterable[Rule], overrides: Iterable[Override], app_id: int
) -> tuple[Rule, ...]:
    """The rules in force for `app_id`: defaults, then global overrides, then this app's.
    An override may change a condition's minimum, enable or disable the rule, or change the
    throttle length; it cannot add a metric the rule does not have."""
    by_scope = sorted(
        (o for o in overrides if o.app_id is None or o.app_id == app_id),
        key=lambda o: o.app_id is not None,
    )
    out = []
    for rule in defaults:
        for o in by_scope:
            if o.rule != rule.name:
                continue
            when = tuple((m, float(o.when.get(m, v))) for m, v in rule.when)
            rule = replace(
                rule,
                when=when,
                enabled=rule.enabled if o.enabled is None else o.enabled,
                throttle_seconds=(
                    rule.throttle_seconds if o.throttle_seconds is None else o.throttle_seconds
                ),
            )
        out.append(rule)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Decision:
    rule: Rule
    figures: dict[str, float | int]


def evaluate(
    rules: Iterable[Rule],
    figures: Figures,
    *,
    already_fired: AbstractSet[str] = frozenset(),
    throttled: bool = False,
) -> list[Decision]:
    """The rules that fire now, most severe last. Each rule fires once per app until staff
    clear its firing; a harvest that goes on after a throttle therefore meets the next,
    stricter rule (a suspension) instead of the same throttle again. A throttle does not
    fire while the app is throttled already."""
    out = []
    for rule in rules:
        if rule.name in already_fired or not rule.holds(figures):
            continue
        if rule.action == THROTTLE and throttled:
            continue
        out.append(Decision(rule, rule.figures_that_fired(figures)))
    return sorted(out, key=lambda d: SEVERITY[d.rule.action])
