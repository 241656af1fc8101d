"""The release rule (consentry/graph/release.py) against an independent oracle of
docs/rules.md's text (tests/release_oracle.py), without a database: thousands of cases."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consentry.graph.release import (
    AppFacts,
    IdScope,
    Relation,
    SubjectFacts,
    ViewerFacts,
    friend_id_scope,
    release,
)
from tests.release_oracle import (
    ALL_PERMISSIONS,
    FIELD_PERMISSION,
    NEEDS_REVIEW,
    PROFILE_ORDER,
    Situation,
    expected_friend_id_kind,
    expected_release,
)

FIELDS = ("id", *FIELD_PERMISSION)
AUDIENCES = ("public", "friends", "only_me")


def _permissions(bits: int) -> set[str]:
    return {p for i, p in enumerate(ALL_PERMISSIONS) if bits >> i & 1}


# Each situation is drawn as a handful of integers and decoded: cheap enough for
# thousands of examples in a few seconds.
@st.composite
def situations(draw: st.DrawFn) -> Situation:
    n = len(ALL_PERMISSIONS)
    viewer_grant = _permissions(draw(st.integers(0, 2**n - 1)))
    # Tokens usually carry a subset of the grant; sometimes more (a stale scope string).
    token_bits = draw(st.integers(0, 2**n - 1))
    token_scope = _permissions(token_bits)
    if draw(st.booleans()):
        token_scope &= viewer_grant
    audience_code = draw(st.integers(0, 4 ** len(PROFILE_ORDER) - 1))
    audience = {}
    for name in PROFILE_ORDER:
        audience_code, digit = divmod(audience_code, 4)
        if digit < len(AUDIENCES):  # 3 means "no audience recorded": counts as only_me
            audience[name] = AUDIENCES[digit]
    review = sorted(NEEDS_REVIEW)
    approved_bits = draw(st.integers(0, 2 ** len(review) - 1))
    return Situation(
        app_status=draw(st.sampled_from(["live", "live", "development", "suspended", "banned"])),
        approved={p for i, p in enumerate(review) if approved_bits >> i & 1},
        agreement_signed=draw(st.booleans()),
        viewer_is_member=draw(st.booleans()),
        viewer_grant=viewer_grant,
        token_scope=token_scope,
        within_limits=draw(st.sampled_from([True, True, True, False])),
        relation=draw(st.sampled_from(["self", "friend", "friend", "stranger"])),
        audience=audience,
        subject_grant=_permissions(draw(st.integers(0, 2**n - 1))),
        share_mask=draw(st.integers(min_value=0, max_value=2 ** len(PROFILE_ORDER) - 1)),
        route_closed=draw(st.sampled_from([False, False, False, True])),
    )


def to_facts(s: Situation) -> tuple[AppFacts, ViewerFacts, SubjectFacts]:
    return (
        AppFacts(
            status=s.app_status,
            approved_permissions=frozenset(s.approved),
            agreement_signed=s.agreement_signed,
        ),
        ViewerFacts(
            is_member=s.viewer_is_member,
            grant=frozenset(s.viewer_grant),
            token_scope=frozenset(s.token_scope),
            within_limits=s.within_limits,
        ),
        SubjectFacts(
            relation=Relation(s.relation),
            audience=dict(s.audience),
            grant=frozenset(s.subject_grant),
            friend_share_mask=s.share_mask,
            route_closed=s.route_closed,
        ),
    )


@settings(max_examples=4000, deadline=None)
@given(situation=situations(), requested_bits=st.integers(1, 2 ** len(FIELDS) - 1))
def test_release_agrees_with_the_oracle(situation, requested_bits):
    requested = {f for i, f in enumerate(FIELDS) if requested_bits >> i & 1}
    app, viewer, subject = to_facts(situation)
    released = release(app, viewer, subject, frozenset(requested))
    assert released == expected_release(situation, requested)
    if situation.relation == "friend" and "id" in released:
        assert friend_id_scope(subject).value == expected_friend_id_kind(situation)


def _live_friend_situation(**changes) -> Situation:
    base = Situation(
        app_status="live",
        approved={"user_birthday", "user_friends"},
        agreement_signed=True,
        viewer_is_member=False,
        viewer_grant={"openid", "profile", "user_birthday", "user_friends"},
        token_scope={"openid", "profile", "user_birthday", "user_friends"},
        relation="friend",
        audience={"name": "public", "birthday": "friends", "email": "public"},
        subject_grant=set(),
        share_mask=0,
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def _release(s: Situation, *requested: str) -> frozenset[str]:
    return release(*to_facts(s), frozenset(requested))


def test_friend_without_own_grant_or_opt_in_is_withheld_whole():
    assert _release(_live_friend_situation(), "id", "name", "birthday") == frozenset()


def test_friend_with_own_grant_is_listed_with_covered_fields():
    s = _live_friend_situation(subject_grant={"openid", "profile", "user_birthday"})
    assert _release(s, "id", "name", "birthday") == {"id", "name", "birthday"}


def test_friend_opt_in_releases_only_that_field():
    s = _live_friend_situation(share_mask=1 << PROFILE_ORDER.index("birthday"))
    assert _release(s, "id", "name", "birthday") == {"id", "birthday"}


def test_friend_audience_only_me_withholds_even_with_their_grant():
    s = _live_friend_situation(
        subject_grant={"profile", "user_birthday"},
        audience={"name": "public", "birthday": "only_me"},
    )
    assert _release(s, "id", "name", "birthday") == {"id", "name"}


def test_email_of_a_friend_is_never_released():
    s = _live_friend_situation(
        subject_grant={"profile", "email"},
        share_mask=1 << PROFILE_ORDER.index("email"),
        viewer_grant={"profile", "email", "user_friends"},
        token_scope={"profile", "email", "user_friends"},
    )
    assert _release(s, "id", "email") == {"id"}


def test_nothing_about_friends_without_user_friends():
    s = _live_friend_situation(
        subject_grant={"profile", "user_birthday"},
        token_scope={"openid", "profile", "user_birthday"},
    )
    assert _release(s, "id", "name", "birthday") == frozenset()


def test_stranger_releases_nothing_even_with_their_own_grant():
    s = _live_friend_situation(relation="stranger", subject_grant={"profile"})
    assert _release(s, "id", "name") == frozenset()


def test_review_field_without_approval_is_withheld_from_self():
    s = _live_friend_situation(relation="self", approved={"user_friends"})
    assert _release(s, "id", "name", "birthday") == {"id", "name"}


def test_agreement_needed_for_likes():
    s = _live_friend_situation(
        relation="self",
        approved={"user_likes"},
        agreement_signed=False,
        viewer_grant={"profile", "user_likes"},
        token_scope={"profile", "user_likes"},
    )
    assert _release(s, "id", "likes") == {"id"}
    s.agreement_signed = True
    assert _release(s, "id", "likes") == {"id", "likes"}


def test_development_app_only_for_members_and_suspended_for_nobody():
    s = _live_friend_situation(relation="self", app_status="development")
    assert _release(s, "id", "name") == frozenset()
    s.viewer_is_member = True
    assert _release(s, "id", "name") == {"id", "name"}
    for status in ("suspended", "banned"):
        s.app_status = status
        assert _release(s, "id", "name") == frozenset()


def test_token_scope_narrower_than_grant_limits_release():
    s = _live_friend_situation(relation="self", token_scope={"openid"})
    assert _release(s, "id", "name", "birthday") == {"id"}


def test_over_limits_releases_nothing():
    s = _live_friend_situation(relation="self", within_limits=False)
    assert _release(s, "id", "name") == frozenset()


def test_closed_route_withholds_the_friend_whole_even_when_they_use_the_app():
    s = _live_friend_situation(subject_grant={"openid", "user_birthday"}, share_mask=0b1000)
    assert _release(s, "id", "name", "birthday") == {"id", "birthday"}
    s.route_closed = True
    assert _release(s, "id", "name", "birthday") == frozenset()


def test_closed_route_does_not_touch_what_the_person_releases_about_themselves():
    s = _live_friend_situation(relation="self", route_closed=True)
    assert _release(s, "id", "birthday") == {"id", "birthday"}


def test_friend_reached_through_opt_in_gets_installer_scoped_id():
    s = _live_friend_situation(share_mask=1 << PROFILE_ORDER.index("birthday"))
    assert _release(s, "id", "birthday") == {"id", "birthday"}
    assert friend_id_scope(to_facts(s)[2]) is IdScope.INSTALLER


def test_friend_who_uses_the_app_keeps_the_app_scoped_id():
    s = _live_friend_situation(subject_grant={"openid"})
    assert _release(s, "id") == {"id"}
    assert friend_id_scope(to_facts(s)[2]) is IdScope.APP
