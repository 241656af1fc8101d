"""The refresh grant on the machine lane (consentry/oauth/rotation.py): the plain refresh
answered by a few statements, with the outcome django-oauth-toolkit's TokenView gives,
row for row; everything else handed to Django before any write (issue "Performance")."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.utils import timezone
from jwcrypto import jwk, jwt

from consentry.grants.actions import do_revoke_consent
from consentry.grants.models import Consent
from consentry.ledger.api import ledger_size, read_entry, verify_ledger
from consentry.oauth import rotation
from consentry.oauth.models import AccessToken, AppStatus, IDToken, RefreshToken
from consentry.oauth.tokens import token_checksum
from consentry.web.lane import MachineLane
from tests.graph_fixtures import direct_consent
from tests.lane_helpers import Counting, call, keep_the_test_connection  # noqa: F401
from tests.oauth_flow import basic_auth, make_app

pytestmark = pytest.mark.django_db

SCOPES = ["openid", "profile", "email", "user_birthday"]
FORM = "application/x-www-form-urlencoded"


def refresh_token_of(
    consent: Consent, scope: list[str], raw: str | None = None, **extra: Any
) -> str:
    """A refresh token (`raw`, by default random hex) with its access token, as a code
    exchange leaves them."""
    raw = raw or uuid.uuid4().hex
    access = AccessToken.objects.create(
        user_id=consent.person_id,
        application_id=consent.application_id,
        consent=consent,
        token=uuid.uuid4().hex,
        scope=" ".join(scope),
        expires=extra.pop("expires", timezone.now() + timedelta(hours=1)),
    )
    RefreshToken.objects.create(
        user_id=consent.person_id,
        application_id=consent.application_id,
        consent=consent,
        token=raw,
        access_token=access,
        token_family=uuid.uuid4(),
        **extra,
    )
    return raw


@pytest.fixture
def world(make_person: Any) -> dict[str, Any]:
    cache.clear()
    person = make_person(name="Ada Rotation", email="ada@rotation.test")
    person.last_login = timezone.now() - timedelta(days=2)
    person.save(update_fields=["last_login"])
    app, secret = make_app(permissions=["user_birthday"])
    consent = direct_consent(person.pk, app, SCOPES)
    return {"person": person, "app": app, "secret": secret, "consent": consent}


def post(app: Any, w: dict[str, Any], form: str, **kw: Any) -> Any:
    headers = kw.pop("headers", {"Authorization": basic_auth(w["app"].client_id, w["secret"])})
    return call(app, "/oauth/token/", "POST", form.encode(), content_type=FORM, headers=headers)


def refresh(app: Any, w: dict[str, Any], raw: str) -> Any:
    return post(app, w, f"grant_type=refresh_token&refresh_token={raw}")


def learnt(w: dict[str, Any]) -> tuple[Counting, MachineLane]:
    """A lane that has seen one refresh through Django (so it knows the address)."""
    inner = Counting()
    lane = MachineLane(inner)
    assert refresh(lane, w, refresh_token_of(w["consent"], SCOPES))[0] == 200
    assert inner.calls == 1
    return inner, lane


def body(response: Any) -> Any:
    return json.loads(response[2])


def id_token(response: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of the response's ID token, verified with the JWKS."""
    keys = call(WSGIHandler(), "/oauth/jwks/")[2].decode()
    token = jwt.JWT(jwt=body(response)["id_token"], key=jwk.JWKSet.from_json(keys))
    return json.loads(token.header), json.loads(token.claims)


def issued(response: Any) -> dict[str, Any]:
    """The rows one refresh left: its access token, refresh token and ID token."""
    answer = body(response)
    access = AccessToken.objects.get(token_checksum=token_checksum(answer["access_token"]))
    fresh = RefreshToken.objects.get(token_checksum=token_checksum(answer["refresh_token"]))
    return {"access": access, "refresh": fresh, "id_token": access.id_token}


SAME_ROWS = {
    AccessToken: ["user_id", "token", "application_id", "scope", "resource", "consent_id"],
    RefreshToken: ["user_id", "token", "application_id", "resource", "revoked", "consent_id"],
    IDToken: ["user_id", "application_id", "scope"],
}


def test_the_lane_issues_what_django_issues_row_for_row(world):
    inner, lane = learnt(world)
    spent = [refresh_token_of(world["consent"], SCOPES) for _ in range(2)]
    families = {r: RefreshToken.objects.get(token_checksum=token_checksum(r)) for r in spent}
    old_access = [families[r].access_token_id for r in spent]
    before = ledger_size()
    through_django = refresh(WSGIHandler(), world, spent[0])
    through_lane = refresh(lane, world, spent[1])
    assert inner.calls == 1  # the second one never reached Django
    assert through_django[0] == through_lane[0] == 200
    django_answer, lane_answer = body(through_django), body(through_lane)
    assert list(lane_answer) == list(django_answer)
    for key in ("expires_in", "token_type", "scope"):
        assert lane_answer[key] == django_answer[key]
    assert lane_answer["scope"] == " ".join(SCOPES)
    headers = {k: v for k, v in through_django[1].items() if k not in ("X-Request-ID",)}
    assert {k: through_lane[1][k] for k in headers if k != "Content-Length"} == {
        k: v for k, v in headers.items() if k != "Content-Length"
    }
    assert through_lane[1]["Cache-Control"] == "no-store"

    # The ID tokens: same header, same claims, each bound to its own access token.
    (dh, dc), (lh, lc) = id_token(through_django), id_token(through_lane)
    assert dh == lh
    assert set(dc) == set(lc)
    varying = {"iat", "exp", "jti", "at_hash"}
    assert {k: v for k, v in dc.items() if k not in varying} == {
        k: v for k, v in lc.items() if k not in varying
    }
    assert lc["email"] == "ada@rotation.test"
    assert lc["name"] == "Ada Rotation"
    assert lc["auth_time"] == int(world["person"].last_login.timestamp())
    assert abs(lc["exp"] - dc["exp"]) <= 2
    assert abs(lc["iat"] - dc["iat"]) <= 2
    assert rotation._at_hash(lane_answer["access_token"]) == lc["at_hash"]
    assert rotation._at_hash(django_answer["access_token"]) == dc["at_hash"]

    # The rows: the same columns, the family carried on, the spent pair revoked.
    rows_d, rows_l = issued(through_django), issued(through_lane)
    for kind, model in (("access", AccessToken), ("refresh", RefreshToken), ("id_token", IDToken)):
        for column in SAME_ROWS[model]:
            assert getattr(rows_l[kind], column) == getattr(rows_d[kind], column), column
    assert str(rows_l["id_token"].jti) == lc["jti"]
    for raw, rows in zip(spent, (rows_d, rows_l), strict=True):
        old = families[raw]
        old.refresh_from_db()
        assert old.revoked is not None
        assert old.access_token_id is None
        assert rows["refresh"].token_family == old.token_family
        assert rows["access"].source_refresh_token_id == old.pk
        assert abs(rows["access"].expires - timezone.now() - timedelta(hours=1)) < timedelta(
            seconds=5
        )
    # Each spent pair's old access token is gone.
    assert not AccessToken.objects.filter(pk__in=old_access).exists()

    # The ledger: one `oidc:id_token` entry each, releasing the same fields.
    assert ledger_size() == before + 2
    entries = [read_entry(before), read_entry(before + 1)]
    assert [e.endpoint for e in entries] == ["oidc:id_token"] * 2
    assert entries[0].released == entries[1].released
    assert entries[0].token_id == entries[1].token_id is None
    assert verify_ledger().ok


def test_what_the_lane_issued_works_and_refreshes_again(world):
    inner, lane = learnt(world)
    first = body(refresh(lane, world, refresh_token_of(world["consent"], SCOPES)))
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    me = call(lane, "/v1/me", query="fields=name", headers=bearer)
    assert me[0] == 200
    assert body(me)["data"]["name"] == "Ada Rotation"
    second = refresh(lane, world, first["refresh_token"])
    assert second[0] == 200
    assert inner.calls == 2  # the learning refresh, then /v1/me's own first request
    # The first pair's access token died with its refresh token.
    gone = call(lane, "/v1/me", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert gone[0] == 401


def test_reusing_a_spent_refresh_token_revokes_its_family(world):
    _inner, lane = learnt(world)
    raw = refresh_token_of(world["consent"], SCOPES)
    new = body(refresh(lane, world, raw))
    replay = refresh(lane, world, raw)
    assert replay[0] == 400
    assert body(replay)["error"] == "invalid_grant"
    dead = refresh(lane, world, new["refresh_token"])  # the family is revoked (RFC 9700)
    assert dead[0] == 400
    assert body(dead)["error"] == "invalid_grant"


def test_without_openid_no_id_token_and_no_ledger_entry(world):
    _inner, lane = learnt(world)
    before = ledger_size()
    answer = refresh(lane, world, refresh_token_of(world["consent"], ["user_birthday"]))
    assert answer[0] == 200
    assert "id_token" not in body(answer)
    assert body(answer)["scope"] == "user_birthday"
    assert ledger_size() == before


def test_the_scope_is_narrowed_to_what_the_consent_grants_now(world):
    _inner, lane = learnt(world)
    raw = refresh_token_of(world["consent"], [*SCOPES, "user_likes"])  # not granted
    answer = body(refresh(lane, world, raw))
    assert answer["scope"] == " ".join(SCOPES)
    assert issued((200, {}, json.dumps(answer).encode()))["access"].scope == " ".join(SCOPES)


def test_the_relay_address_is_what_the_id_token_carries(world):
    world["consent"].email_choice = "relay"
    world["consent"].save(update_fields=["email_choice"])
    _inner, lane = learnt(world)
    through_lane = refresh(lane, world, refresh_token_of(world["consent"], SCOPES))
    through_django = refresh(WSGIHandler(), world, refresh_token_of(world["consent"], SCOPES))
    assert id_token(through_lane)[1]["email"] == id_token(through_django)[1]["email"]
    assert "@relay." in id_token(through_lane)[1]["email"]


def refused_by_django(world: dict[str, Any], lane: MachineLane, inner: Counting, raw: str) -> Any:
    calls, size = inner.calls, ledger_size()
    tokens = AccessToken.objects.count(), RefreshToken.objects.count()
    answer = refresh(lane, world, raw)
    assert inner.calls == calls + 1  # Django answered it
    assert ledger_size() == size
    assert answer[0] == 400, answer
    assert (AccessToken.objects.count(), RefreshToken.objects.count()) <= tokens
    return body(answer)


def test_a_revoked_consent_is_django_s_invalid_grant(world):
    inner, lane = learnt(world)
    raw = refresh_token_of(world["consent"], SCOPES)
    do_revoke_consent(world["consent"])
    assert refused_by_django(world, lane, inner, raw)["error"] == "invalid_grant"


def test_an_expired_consent_is_refused_by_django(world):
    inner, lane = learnt(world)
    raw = refresh_token_of(world["consent"], SCOPES)
    Consent.objects.filter(pk=world["consent"].pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert refused_by_django(world, lane, inner, raw)["error"] == "invalid_grant"


def test_a_suspended_app_and_an_inactive_person_are_django_s(world):
    inner, lane = learnt(world)
    raw = refresh_token_of(world["consent"], SCOPES)
    world["person"].is_active = False
    world["person"].save(update_fields=["is_active"])
    assert refused_by_django(world, lane, inner, raw)["error"] == "invalid_grant"
    world["person"].is_active = True
    world["person"].save(update_fields=["is_active"])
    world["app"].status = AppStatus.SUSPENDED
    world["app"].save(update_fields=["status"])
    answer = refresh(lane, world, raw)
    assert answer[0] == 401
    assert body(answer)["error"] == "invalid_client"


def test_a_development_app_serves_only_its_members(world, make_person):
    world["app"].status = AppStatus.DEVELOPMENT
    world["app"].save(update_fields=["status"])
    world["app"].members.add(world["person"])
    inner, lane = learnt(world)
    stranger = make_person()
    outsider = refresh_token_of(direct_consent(stranger.pk, world["app"], SCOPES), SCOPES)
    assert refused_by_django(world, lane, inner, outsider)["error"] == "invalid_grant"
    calls = inner.calls
    assert refresh(lane, world, refresh_token_of(world["consent"], SCOPES))[0] == 200
    assert inner.calls == calls


def test_an_old_refresh_token_is_refused_after_its_lifetime(world):
    inner, lane = learnt(world)
    long_ago = timezone.now() - timedelta(days=91)
    raw = refresh_token_of(world["consent"], SCOPES, expires=long_ago)
    assert refused_by_django(world, lane, inner, raw)["error"] == "invalid_grant"


def test_another_client_s_refresh_token_is_refused(world, make_person):
    inner, lane = learnt(world)
    other_app, _ = make_app(permissions=["user_birthday"])
    foreign = refresh_token_of(direct_consent(world["person"].pk, other_app, SCOPES), SCOPES)
    assert refused_by_django(world, lane, inner, foreign)["error"] == "invalid_grant"
    assert RefreshToken.objects.get(token_checksum=token_checksum(foreign)).revoked is None


def test_unknown_and_malformed_tokens_are_django_s(world):
    inner, lane = learnt(world)
    assert refused_by_django(world, lane, inner, "not-a-token")["error"] == "invalid_grant"
    for form in (
        "grant_type=refresh_token&refresh_token=",
        "grant_type=refresh_token&refresh_token=%00abc",
        "grant_type=refresh_token&refresh_token=a&refresh_token=b",
        "grant_type=refresh_token",
    ):
        calls = inner.calls
        answer = post(lane, world, form)
        assert answer[0] == 400, form
        assert inner.calls == calls + 1, form


def test_unusual_requests_go_to_django_which_answers_them_as_always(world):
    inner, lane = learnt(world)
    # A scope parameter (narrowing, RFC 6749 6): Django's, and it works.
    raw = refresh_token_of(world["consent"], SCOPES)
    narrowed = post(lane, world, f"grant_type=refresh_token&refresh_token={raw}&scope=openid")
    assert narrowed[0] == 200
    assert body(narrowed)["scope"] == "openid"
    # client_secret_post: Django's.
    raw = refresh_token_of(world["consent"], SCOPES)
    form = (
        f"grant_type=refresh_token&refresh_token={raw}"
        f"&client_id={world['app'].client_id}&client_secret={world['secret']}"
    )
    assert post(lane, world, form, headers={})[0] == 200
    # A wrong secret: Django's 401, counted by the throttle.
    raw = refresh_token_of(world["consent"], SCOPES)
    wrong = {"Authorization": basic_auth(world["app"].client_id, world["secret"] + "x")}
    refused = post(lane, world, f"grant_type=refresh_token&refresh_token={raw}", headers=wrong)
    assert refused[0] == 401
    # A token with an RFC 8707 resource: Django's, which keeps the resource.
    resourced = refresh_token_of(world["consent"], SCOPES, resource=["https://api.example"])
    kept = refresh(lane, world, resourced)
    assert kept[0] == 200
    assert issued(kept)["refresh"].resource == ["https://api.example"]
    # The authorization code grant is always Django's.
    code = post(lane, world, "grant_type=authorization_code&code=x&redirect_uri=y")
    assert code[0] == 400
    assert inner.calls == 6


def test_a_failure_inside_the_lane_leaves_nothing_and_django_answers(world, monkeypatch):
    inner, lane = learnt(world)
    raw = refresh_token_of(world["consent"], SCOPES)
    tokens = AccessToken.objects.count(), RefreshToken.objects.count(), IDToken.objects.count()

    def broken(**kwargs: Any) -> int:
        raise RuntimeError("the ledger is unavailable")

    monkeypatch.setattr(rotation, "record_disclosure", broken)
    before = ledger_size()
    answer = refresh(lane, world, raw)
    assert answer[0] == 200  # Django's own path, whose ledger works
    assert inner.calls == 2
    assert ledger_size() == before + 1
    # One rotation, not two: the lane's writes were rolled back.
    assert (
        AccessToken.objects.count(),
        RefreshToken.objects.count(),
        IDToken.objects.count(),
    ) == (tokens[0], tokens[1] + 1, tokens[2] + 1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_with_one_token_issue_once_and_revoke_the_family(make_person):
    """Of racing refreshes with the same token one wins; the others are reuse (RFC 9700
    4.14.2): refused, and the family -- the winner's new pair too -- revoked."""
    cache.clear()
    person = make_person()
    app, secret = make_app(permissions=["user_birthday"])
    w = {"app": app, "secret": secret, "consent": direct_consent(person.pk, app, SCOPES)}
    lane = MachineLane(WSGIHandler())
    assert refresh(lane, w, refresh_token_of(w["consent"], SCOPES))[0] == 200
    for _round in range(3):
        raw = refresh_token_of(w["consent"], SCOPES)
        answers: list[Any] = []
        start = threading.Barrier(4)

        def spend(raw: str = raw, answers: list[Any] = answers, start: Any = start) -> None:
            try:
                start.wait()
                answers.append(refresh(lane, w, raw))
            finally:
                connection.close()

        threads = [threading.Thread(target=spend) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        won = [a for a in answers if a[0] == 200]
        assert len(won) == 1, [a[0] for a in answers]
        assert sorted(body(a)["error"] for a in answers if a[0] != 200) == ["invalid_grant"] * 3
        family = RefreshToken.objects.get(token_checksum=token_checksum(raw)).token_family
        assert not RefreshToken.objects.filter(token_family=family, revoked=None).exists()
        assert refresh(lane, w, body(won[0])["refresh_token"])[0] == 400
    assert verify_ledger().ok


def _rows(consent: Consent, rt: RefreshToken, openid: bool) -> tuple[Any, Any, Any]:
    now = timezone.now()
    ids = {"user_id": consent.person_id, "application_id": consent.application_id}
    id_row = {**ids, "jti": uuid.uuid4(), "expires": now, "scope": "openid", "created": now,
              "updated": now} if openid else None  # fmt: skip
    at_row = {**ids, "source_refresh_token_id": rt.pk, "token": "",
              "token_checksum": token_checksum(uuid.uuid4().hex), "expires": now,
              "scope": "openid", "resource": [], "created": now, "updated": now,
              "consent_id": consent.pk}  # fmt: skip
    rt_row = {**ids, "token": "", "token_checksum": token_checksum(uuid.uuid4().hex),
              "token_family": rt.token_family, "resource": [], "created": now,
              "updated": now, "revoked": None, "consent_id": consent.pk}  # fmt: skip
    return id_row, at_row, rt_row


@pytest.mark.parametrize("openid", [True, False])
def test_a_claim_that_loses_writes_nothing(world, openid):
    """The rotation's writes (one WITH statement on PostgreSQL, six on SQLite) spend the
    refresh token once: run again for the same, now revoked, token they insert nothing --
    and meet no unique constraint (the new access token's source_refresh_token)."""
    raw = refresh_token_of(world["consent"], SCOPES)
    rt = RefreshToken.objects.get(token_checksum=token_checksum(raw))
    write = rotation._write_in_one if connection.vendor == "postgresql" else rotation._write

    def counts() -> tuple[int, int, int]:
        return (AccessToken.objects.count(), RefreshToken.objects.count(),
                IDToken.objects.count())  # fmt: skip

    before = counts()
    with connection.cursor() as cursor:
        first = _rows(world["consent"], rt, openid)
        assert write(cursor, timezone.now(), rt.pk, rt.access_token_id, *first)
        spent = counts()
        assert spent == (before[0], before[1] + 1, before[2] + openid)  # one deleted, one new
        assert not write(cursor, timezone.now(), rt.pk, rt.access_token_id, *_rows(
            world["consent"], rt, openid))  # fmt: skip
        assert counts() == spent
    rt.refresh_from_db()
    assert rt.revoked is not None
    assert rt.access_token_id is None
    new = AccessToken.objects.get(token_checksum=first[1]["token_checksum"])
    assert new.source_refresh_token_id == rt.pk
    assert (new.id_token_id is not None) == openid
    assert RefreshToken.objects.get(token_checksum=first[2]["token_checksum"]).access_token == new


def test_new_tokens_are_oauthlibs_alphabet_and_length_and_all_different():
    from oauthlib.common import UNICODE_ASCII_CHARACTER_SET

    tokens = [rotation.new_token() for _ in range(2000)]
    assert len(set(tokens)) == len(tokens)
    assert {len(t) for t in tokens} == {30}
    seen = set("".join(tokens))
    assert seen == set(UNICODE_ASCII_CHARACTER_SET)  # every symbol, and only those
    # No symbol favoured (248 = 4 x 62 bytes kept): each near 60,000 / 62 = 968.
    counts = [sum(t.count(c) for t in tokens) for c in UNICODE_ASCII_CHARACTER_SET]
    assert max(counts) < 1200
    assert min(counts) > 750


@pytest.mark.parametrize(
    ("content_type", "lane_answers"),
    [
        ("application/x-www-form-urlencoded;charset=UTF-8", True),  # Authlib's
        ("application/x-www-form-urlencoded; charset=utf-8", True),
        ('Application/X-WWW-Form-URLEncoded ; CHARSET="utf-8"', True),
        ("application/x-www-form-urlencoded; charset=latin-1", False),
        ("application/x-www-form-urlencoded; boundary=x", False),
        ("application/x-www-form-urlencodedx", False),
        ("multipart/form-data; boundary=x", False),
        ("", False),
    ],
)
def test_the_form_may_name_its_utf8_charset_as_clients_do(world, content_type, lane_answers):
    """Django reads the Content-Type with its parameters; so does the lane, which takes
    only a form in UTF-8 and leaves every other type to Django."""
    inner, lane = learnt(world)
    raw = refresh_token_of(world["consent"], SCOPES)
    answer = call(
        lane,
        "/oauth/token/",
        "POST",
        f"grant_type=refresh_token&refresh_token={raw}".encode(),
        content_type=content_type,
        headers={"Authorization": basic_auth(world["app"].client_id, world["secret"])},
    )
    assert inner.calls == (1 if lane_answers else 2)
    if lane_answers:
        assert answer[0] == 200
        assert (
            issued(answer)["refresh"].token_family
            == RefreshToken.objects.get(token_checksum=token_checksum(raw)).token_family
        )
