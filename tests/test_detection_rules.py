"""The detection rules as pure functions: conditions, overrides, once-per-episode firing,
and the ratios derived from the counts (no database)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consentry.detection import rules as R

COUNTS = st.integers(min_value=0, max_value=10**7)


def figures(**counts: int) -> R.Figures:
    base = dict.fromkeys(
        (
            "calls",
            "installers",
            "subjects_reached",
            "requested_fields",
            "withheld_fields",
            "person_lookups",
            "not_found",
            "new_subjects_hour",
            "new_subjects_day",
            "requests_minute",
            "world",
        ),
        0,
    )
    return R.figures_of(**{**base, **counts})


@given(
    installers=COUNTS,
    reached=COUNTS,
    requested=COUNTS,
    lookups=COUNTS,
    world=COUNTS,
    data=st.data(),
)
def test_ratios_are_the_counts_divided_and_zero_without_volume(
    installers, reached, requested, lookups, world, data
):
    withheld = data.draw(st.integers(0, requested))
    not_found = data.draw(st.integers(0, lookups))
    f = figures(
        installers=installers,
        subjects_reached=reached,
        requested_fields=requested,
        withheld_fields=withheld,
        person_lookups=lookups,
        not_found=not_found,
        world=world,
    )
    assert 0.0 <= f.withheld_share <= 1.0
    assert 0.0 <= f.not_found_rate <= 1.0
    assert f.withheld_share == (withheld / requested if requested else 0.0)
    assert f.not_found_rate == (not_found / lookups if lookups else 0.0)
    assert f.world_share == (reached / world if world else 0.0)
    assert f.amplification == (reached / installers if installers else float(reached))


@given(st.dictionaries(st.sampled_from(R.METRICS), st.integers(0, 10**6)))
def test_a_rule_fires_exactly_when_every_condition_holds(values):
    f = R.Figures(**values)
    for rule in R.DEFAULT_RULES:
        expected = all(getattr(f, m) >= v for m, v in rule.when)
        fired = [d.rule.name for d in R.evaluate([rule], f)]
        assert fired == ([rule.name] if expected else [])
        if expected:
            assert R.evaluate([rule], f, already_fired=frozenset({rule.name})) == []


def test_the_figures_stored_with_a_firing_are_the_rules_metrics():
    f = figures(person_lookups=1000, not_found=900, calls=1000)
    decisions = R.evaluate(R.DEFAULT_RULES, f)
    names = [d.rule.name for d in decisions]
    assert names == ["enumeration", "enumeration_throttle", "enumeration_suspend"]
    assert decisions[-1].figures == {"not_found_rate": 0.9, "not_found": 900}


def test_a_throttle_does_not_fire_while_the_app_is_throttled():
    f = figures(person_lookups=150, not_found=150)
    assert "enumeration_throttle" in [d.rule.name for d in R.evaluate(R.DEFAULT_RULES, f)]
    assert "enumeration_throttle" not in [
        d.rule.name for d in R.evaluate(R.DEFAULT_RULES, f, throttled=True)
    ]


def test_app_overrides_win_over_global_ones_and_cannot_add_metrics():
    overrides = [
        R.Override("overreach", None, when={"withheld_share": 0.9}),
        R.Override("overreach", 7, when={"withheld_share": 0.2, "invented": 1.0}),
        R.Override("call_rate", None, enabled=False),
        R.Override("enumeration_throttle", 7, throttle_seconds=60),
    ]
    for_7 = {r.name: r for r in R.rules_with_overrides(R.DEFAULT_RULES, overrides, 7)}
    for_8 = {r.name: r for r in R.rules_with_overrides(R.DEFAULT_RULES, overrides, 8)}
    assert dict(for_7["overreach"].when) == {"withheld_share": 0.2, "requested_fields": 2000}
    assert dict(for_8["overreach"].when) == {"withheld_share": 0.9, "requested_fields": 2000}
    assert not for_7["call_rate"].enabled
    assert not for_8["call_rate"].enabled
    assert for_7["enumeration_throttle"].throttle_seconds == 60
    assert for_8["enumeration_throttle"].throttle_seconds == 900


def test_a_birthday_calendar_shape_fires_nothing():
    """Thousands of installers, reach about their own number, nothing probed, little
    withheld, a few calls each."""
    f = figures(
        calls=12_000,
        installers=5_000,
        subjects_reached=5_200,
        requested_fields=300_000,
        withheld_fields=20_000,
        person_lookups=2_000,
        not_found=20,
        new_subjects_hour=3_000,
        new_subjects_day=5_200,
        requests_minute=400,
        world=20_000,
    )
    assert R.evaluate(R.DEFAULT_RULES, f) == []


def test_a_nan_minimum_never_holds():
    """An operator's override is JSON, which may hold NaN: such a condition never holds
    (comparisons with NaN are false), so the rule cannot fire on every app at once."""
    nan = float("nan")
    rules = R.rules_with_overrides(
        R.DEFAULT_RULES,
        [R.Override("enumeration_suspend", when={"not_found_rate": nan, "not_found": nan})],
        1,
    )
    assert R.evaluate(rules, R.Figures(calls=1)) == []
    probing = R.Figures(calls=10**6, person_lookups=10**6, not_found=10**6, not_found_rate=1.0)
    fired = {d.rule.name for d in R.evaluate(rules, probing)}
    assert "enumeration_throttle" in fired  # the rules left alone still fire
    assert "enumeration_suspend" not in fired
