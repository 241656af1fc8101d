"""The read path's token check and client authentication, made fast without giving up
anything (issue "Performance"; issue "Production at scale": a token check costs no
database round trip with Redis, yet a revocation is honoured on the very next request).

The Redis tests use the real server at CONSENTRY_TEST_REDIS_URL under a key prefix of
their own, and delete only their own keys afterwards."""

from __future__ import annotations

import os
import secrets
from typing import Any

import pytest
import redis
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password
from django.core.cache import cache
from django.test import Client

from consentry.grants.actions import do_revoke_consent, do_revoke_permission
from consentry.oauth.hashers import ClientSecretHasher
from consentry.oauth.models import Application, AppStatus
from consentry.oauth.tokens import GENERATION_PREFIX, token_facts, usable_token_facts
from tests.graph_fixtures import direct_app, direct_consent, direct_token
from tests.oauth_flow import basic_auth, cheap_argon2, make_app  # noqa: F401

REDIS_URL = os.environ.get("CONSENTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SCOPES = ["openid", "profile", "user_birthday"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared_cache(settings: Any) -> Any:
    """Django's cache on the real Redis, under a prefix unique to this test."""
    prefix = f"consentry-test-{secrets.token_hex(6)}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    settings.TOKEN_CACHE_SECONDS = 300
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


def world(make_person: Any, **app: Any) -> tuple[Any, Application, str]:
    person = make_person(birthday="1990-05-17")
    application = direct_app(approved=["user_birthday"], **app)
    consent = direct_consent(person.pk, application, SCOPES)
    return person, application, direct_token(consent, SCOPES)


def me(token: str) -> Any:
    return Client().get(
        "/v1/me", {"fields": "id,name,birthday"}, HTTP_AUTHORIZATION=f"Bearer {token}"
    )


# --- the lean query ------------------------------------------------------------------


def test_an_app_s_json_columns_read_back_whole_even_past_what_orjson_reads(make_person):
    """The facts decode the app's JSON columns exactly as Django stored them: an integer
    past 64 bits stays an integer (orjson, tried for speed, reads it as a float, and the
    limit it sets would then be ignored)."""
    _person, app, token = world(make_person)
    huge = 10**30
    Application.objects.filter(pk=app.pk).update(limits={"requests_per_minute": huge})
    facts = usable_token_facts(token)
    assert facts is not None
    assert facts.app_limits == {"requests_per_minute": huge}
    assert facts.approved_permissions == ("user_birthday",)
    assert me(token).status_code == 200


def test_without_redis_a_token_check_is_one_query(make_person, django_assert_num_queries):
    person, app, token = world(make_person)
    with django_assert_num_queries(1):
        facts = usable_token_facts(token)
    assert facts is not None
    assert (facts.person_id, facts.app_id, facts.person_is_active) == (person.pk, app.pk, True)
    assert facts.scopes == frozenset(SCOPES)


def test_unknown_and_absurd_tokens_have_no_facts(make_person):
    world(make_person)
    assert token_facts("not-a-token") is None
    assert token_facts("x" * 10_000) is None
    assert token_facts("") is None


def test_inactive_person_and_development_app_without_role_make_a_token_unusable(make_person):
    person, app, token = world(make_person)
    person.is_active = False
    person.save(update_fields=["is_active"])
    assert token_facts(token) is not None
    assert usable_token_facts(token) is None
    person.is_active = True
    person.save(update_fields=["is_active"])
    app.status = AppStatus.DEVELOPMENT
    app.save()
    assert usable_token_facts(token) is None
    app.members.add(person)
    assert usable_token_facts(token) is not None


# --- the shared cache ------------------------------------------------------------------


def test_with_redis_a_cached_token_check_makes_no_database_query(
    make_person, shared_cache, django_assert_num_queries
):
    _, _, token = world(make_person)
    assert usable_token_facts(token) is not None  # fills the cache
    with django_assert_num_queries(0):
        assert usable_token_facts(token) is not None
    assert any(shared_cache.scan_iter(match="*consentry:token:*"))


def test_with_redis_a_revoked_consent_is_refused_on_the_next_request(make_person, shared_cache):
    person, app, token = world(make_person)
    assert me(token).status_code == 200
    assert me(token).status_code == 200  # served from the cache
    do_revoke_consent(app.consents.get(person=person))
    assert me(token).status_code == 401


def test_with_redis_a_narrowed_token_loses_the_permission_on_the_next_request(
    make_person, shared_cache
):
    person, app, token = world(make_person)
    assert me(token).json()["data"]["birthday"] == "1990-05-17"
    do_revoke_permission(app.consents.get(person=person), "user_birthday")
    body = me(token).json()
    assert "birthday" not in body["data"]
    assert body["meta"]["withheld_fields"] == 1


def test_with_redis_a_banned_app_and_a_deactivated_person_are_refused_at_once(
    make_person, shared_cache
):
    person, app, token = world(make_person)
    assert me(token).status_code == 200
    app.status = AppStatus.BANNED
    app.save()
    assert me(token).status_code == 401
    app.status = AppStatus.LIVE
    app.save()
    assert me(token).status_code == 200
    person.is_active = False
    person.save(update_fields=["is_active"])
    assert me(token).status_code == 401


def test_with_redis_a_lost_generation_counts_as_a_change(make_person, shared_cache):
    """Redis may lose keys (eviction, restart): a cached entry whose generation is gone is
    not trusted, the database is asked again."""
    person, app, token = world(make_person)
    assert usable_token_facts(token) is not None
    consent = app.consents.get(person=person)
    cache.delete(f"{GENERATION_PREFIX}c:{consent.pk}")
    app.consents.filter(pk=consent.pk).update(permission_mask=0)  # behind the cache's back
    assert usable_token_facts(token) is None


def test_with_redis_a_revocation_in_another_process_is_refused_here(make_person, shared_cache):
    """Nothing is kept in the process: a revocation that another process made (its
    generation replaced in the shared Redis, its rows changed) is seen here."""
    person, app, token = world(make_person)
    assert me(token).status_code == 200
    consent = app.consents.get(person=person)
    # What do_revoke_consent does in the other process: rows, then the generation.
    app.consents.filter(pk=consent.pk).update(permission_mask=0)
    shared_cache.set(
        f"{cache.key_prefix}:1:{GENERATION_PREFIX}c:{consent.pk}",  # Django's key layout
        b"12345",  # what the other process wrote: any value but the cached one
    )
    assert me(token).status_code == 401


# --- client secrets --------------------------------------------------------------------


def introspect(app: Application, secret: str, token: str) -> Any:
    return Client().post(
        "/oauth/introspect/",
        {"token": token},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


@pytest.mark.usefixtures("cheap_argon2")
def test_new_client_secrets_get_the_fast_hash_and_people_keep_argon2(make_person):
    person = make_person()
    app, secret = make_app(permissions=["user_birthday"])
    assert app.client_secret.startswith("client_hmac_sha256$")
    assert ClientSecretHasher().verify(secret, app.client_secret)
    assert not ClientSecretHasher().verify(secret + "x", app.client_secret)
    assert person.password.startswith("argon2$")


@pytest.mark.usefixtures("cheap_argon2")
def test_an_argon2_client_secret_is_upgraded_on_its_next_successful_use(make_person):
    person = make_person()
    app, secret = make_app(permissions=["user_birthday"])
    old = make_password(secret, hasher=Argon2PasswordHasher())
    Application.objects.filter(pk=app.pk).update(client_secret=old)
    consent = direct_consent(person.pk, app, SCOPES)
    token = direct_token(consent, SCOPES)

    assert introspect(app, secret + "x", token).status_code == 401  # wrong: no upgrade
    app.refresh_from_db()
    assert app.client_secret == old

    assert introspect(app, secret, token).json()["active"] is True
    app.refresh_from_db()
    assert app.client_secret.startswith("client_hmac_sha256$")
    assert introspect(app, secret, token).json()["active"] is True  # still the same secret
    assert introspect(app, secret + "x", token).status_code == 401


def test_with_redis_a_suspension_by_harvest_detection_is_refused_at_once(make_person, shared_cache):
    """Detection suspends with a QuerySet update (no save signal): the cached token
    facts must still be dropped, or the harvest would go on for the cache's lifetime."""
    from consentry.detection.actions import do_record_firings
    from consentry.detection.rules import DEFAULT_RULES, SUSPEND, Decision, Figures

    _person, app, token = world(make_person)
    assert me(token).status_code == 200
    assert me(token).status_code == 200  # served from the cache
    rule = next(r for r in DEFAULT_RULES if r.action == SUSPEND)
    do_record_firings(app.pk, [Decision(rule=rule, figures={})], Figures())
    assert me(token).status_code == 401


def test_with_redis_a_ban_is_refused_at_once(make_person, shared_cache):
    from consentry.incidents.actions import do_ban_app

    _person, app, token = world(make_person)
    assert me(token).status_code == 200
    assert me(token).status_code == 200
    do_ban_app(app, staff_id=None, reason="harvest")
    assert me(token).status_code == 401


def test_with_redis_a_hinted_check_is_one_round_trip_and_still_sees_a_revocation(
    make_person, shared_cache
):
    """Once this process has seen a token, its entry and generations come in one MGET;
    a revocation in between still refuses it on the very next check."""
    from django.core.cache import cache

    person, app, token = world(make_person)
    for _ in range(3):  # fill the cache, learn the ids, then the one-trip path
        assert usable_token_facts(token) is not None
    calls: list[str] = []
    backend = cache._cache  # type: ignore[attr-defined]
    get, get_many = backend.get, backend.get_many

    def counting_get(*args: object, **kwargs: object) -> object:
        calls.append("get")
        return get(*args, **kwargs)

    def counting_get_many(*args: object, **kwargs: object) -> object:
        calls.append("mget")
        return get_many(*args, **kwargs)

    backend.get, backend.get_many = counting_get, counting_get_many
    try:
        assert usable_token_facts(token) is not None
        assert calls == ["mget"]  # one round trip to Redis, none to the database
        do_revoke_consent(app.consents.get(person=person))
        assert usable_token_facts(token) is None
    finally:
        backend.get, backend.get_many = get, get_many
