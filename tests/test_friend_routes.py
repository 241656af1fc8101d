"""Release rule 3 in the Graph API: closed routes, and (app, installer)-scoped ids for
friends who reach an app only through their opt-in (docs/rules.md "The release rule")."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from consentry.grants.actions import do_close_route, do_reopen_route
from consentry.oauth.pairwise import app_scoped_id, installer_scoped_ids
from consentry.people.actions import do_add_friendship
from consentry.people.fields import FIELD_BIT
from tests.graph_fixtures import direct_app, direct_consent, direct_token, get, newest_entry
from tests.oauth_flow import cheap_argon2  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]
SCOPES = ["openid", "profile", "user_birthday", "user_friends"]


@pytest.fixture
def two_installers(make_person):
    """Sharer (never used the app, opted in to share her birthday) is a friend of two
    installers, U1 and U2; User (uses the app) is a friend of both too."""
    app = direct_app(approved={"user_birthday", "user_friends"})
    sharer = make_person(
        name="Sharer", birthday=dt.date(1992, 2, 2), friend_share_mask=FIELD_BIT["birthday"]
    )
    user = make_person(name="User", birthday=dt.date(1991, 1, 1))
    direct_consent(user.pk, app, ["openid", "user_birthday"])
    u1, u2 = make_person(name="U1"), make_person(name="U2")
    tokens = []
    for installer in (u1, u2):
        do_add_friendship(installer, sharer)
        do_add_friendship(installer, user)
        tokens.append(direct_token(direct_consent(installer.pk, app, SCOPES), SCOPES))
    return app, sharer, user, u1, u2, tokens


def _ids(token: str) -> dict[str, str]:
    body = get(Client(), "/v1/me/friends", token, fields="birthday").json()
    return {entry["birthday"]: entry["id"] for entry in body["data"]}


def test_opted_in_friend_has_a_different_id_in_each_installers_list(two_installers):
    app, sharer, user, u1, u2, (t1, t2) = two_installers
    ids1, ids2 = _ids(t1), _ids(t2)
    assert ids1["1992-02-02"] == installer_scoped_ids(app.pk, u1.pk, [sharer.pk])[0]
    assert ids2["1992-02-02"] == installer_scoped_ids(app.pk, u2.pk, [sharer.pk])[0]
    assert ids1["1992-02-02"] != ids2["1992-02-02"]
    # A friend who uses the app keeps the one app-scoped id everywhere.
    assert ids1["1991-01-01"] == ids2["1991-01-01"] == app_scoped_id(app.pk, user.pk)


def test_installer_scoped_id_is_stable_for_its_installer(two_installers):
    *_, (t1, _t2) = two_installers
    assert _ids(t1) == _ids(t1)


def test_installer_scoped_id_works_for_its_installer_and_is_404_for_another(two_installers):
    _app, _sharer, _user, _u1, _u2, (t1, t2) = two_installers
    scoped = _ids(t1)["1992-02-02"]
    mine = get(Client(), f"/v1/people/{scoped}", t1, fields="birthday")
    assert mine.status_code == 200
    assert mine.json()["data"]["birthday"] == "1992-02-02"
    other = get(Client(), f"/v1/people/{scoped}", t2, fields="birthday")
    assert other.status_code == 404
    assert other.json() == get(Client(), "/v1/people/" + "a" * 26, t2).json()


def test_app_scoped_id_of_a_friend_who_does_not_use_the_app_is_404(two_installers):
    """The app cannot guess its way back to a linkable id for a non-user."""
    app, sharer, *_rest, (t1, _t2) = two_installers
    response = get(Client(), f"/v1/people/{app_scoped_id(app.pk, sharer.pk)}", t1)
    assert response.status_code == 404


def test_closed_route_omits_the_friend_and_is_recorded_nowhere(two_installers):
    _app, sharer, _user, u1, _u2, (t1, t2) = two_installers
    assert do_close_route(sharer, u1.pk)
    body = get(Client(), "/v1/me/friends", t1, fields="birthday").json()
    assert [e["birthday"] for e in body["data"]] == ["1991-01-01"]
    assert sharer.pk not in dict(newest_entry().released)
    # Only U1's route is closed: U2's app still gets her birthday.
    assert "1992-02-02" in _ids(t2)
    do_reopen_route(sharer, u1.pk)
    assert "1992-02-02" in _ids(t1)


def test_closed_route_withholds_even_a_friend_who_uses_the_app(two_installers):
    app, _sharer, user, u1, _u2, (t1, _t2) = two_installers
    scoped = app_scoped_id(app.pk, user.pk)
    do_close_route(user, u1.pk)
    assert "1991-01-01" not in _ids(t1)
    assert get(Client(), f"/v1/people/{scoped}", t1).status_code == 404


def test_only_a_friends_route_can_be_closed(two_installers, make_person):
    _app, sharer, *_rest = two_installers
    assert not do_close_route(sharer, make_person().pk)
