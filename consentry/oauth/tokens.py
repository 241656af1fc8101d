"""Bearer token lookup for resource endpoints (the Graph API, userinfo, introspection).

`token_facts(raw)` answers, for a bearer string, everything the read path needs to decide
whether the token may be used right now: the token, its app, its person and its consent,
as one frozen `TokenFacts`. It costs:

- with Redis (CONSENTRY_REDIS_URL): no database round trip while the facts are cached
  (two Redis reads: the entry, then the generations it was cached under);
- without Redis, or on a cache miss: ONE indexed query of only the columns below
  (token -> app, person, consent; the development-mode role as an EXISTS), no ORDER BY,
  no model objects.

Revocation is honoured by every process on the very next request: each cached entry
carries the generations of its consent, app and person (random values kept in the same
Redis); every write that can take a token's validity away calls `forget_tokens()`, which
replaces those generations (once at once, once again after commit), and deleting or
narrowing an access token drops its entry (signals below). An entry whose generations do
not all match is ignored and the database is asked. A generation that Redis lost counts
as changed, never as unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from consentry.db.prepared import prepared_cursor
from consentry.graph.release import app_usable
from consentry.oauth.models import AccessToken, Application
from consentry.people.models import Person

MAX_TOKEN_LENGTH = 512
ENTRY_PREFIX = "consentry:token:"
GENERATION_PREFIX = "consentry:token-gen:"


def token_checksum(raw: str) -> str:
    """What is stored for a token: its SHA-256, never the token (RFC 9700 section 4)."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenFacts:
    """One access token with the facts of its app, person and consent that decide
    whether it may be used. Plain data: cached as is."""

    token_id: int
    app_id: int
    person_id: int
    consent_id: int | None
    scope: str
    expires: datetime
    created: datetime
    client_id: str
    app_status: str
    approved_permissions: tuple[str, ...]
    agreement_signed: bool
    app_limits: dict[str, Any]
    person_is_active: bool
    is_member: bool  # the person has a role on the app (matters in development mode)
    permission_mask: int  # the consent's active permissions (grants.permissions bits)
    email_choice: str
    consent_last_used_at: datetime | None
    consent_expires_at: datetime | None
    consent_revoked: bool

    def usable(self, now: datetime | None = None) -> bool:
        """May this token be used right now? Not expired; its consent present, not
        revoked, not expired and holding at least one permission (docs/rules.md rule 2); its
        app live, or in development with the person holding a role on it (rule 1:
        suspended and banned apps never); its person active."""
        now = now or timezone.now()
        return (
            self.expires > now
            and self.consent_id is not None
            and not self.consent_revoked
            and self.consent_expires_at is not None
            and self.consent_expires_at > now
            and self.permission_mask != 0
            and self.person_is_active
            and app_usable(self.app_status, self.is_member)
        )

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


# --- the one query -------------------------------------------------------------------


def _sql(profile: tuple[str, ...] = ()) -> str:
    from consentry.grants.models import Consent

    q = connection.ops.quote_name
    t, a = q(AccessToken._meta.db_table), q(Application._meta.db_table)
    p, c = q(Person._meta.db_table), q(Consent._meta.db_table)
    m = q(Application.members.through._meta.db_table)
    return (
        "SELECT t.id, t.application_id, t.user_id, t.consent_id, t.scope, t.expires, "  # noqa: S608
        "t.created, a.client_id, a.status, a.approved_permissions, a.agreement_signed_at, "
        "a.limits, p.is_active, "
        f"EXISTS (SELECT 1 FROM {m} m WHERE m.application_id = t.application_id "
        "AND m.person_id = t.user_id), "
        "c.permission_mask, c.email_choice, c.last_used_at, c.expires_at, c.revoked_at"
        f"{''.join(f', p.{q(column)}' for column in profile)} "
        f"FROM {t} t JOIN {a} a ON a.id = t.application_id "
        f"JOIN {p} p ON p.id = t.user_id "
        f"LEFT JOIN {c} c ON c.id = t.consent_id "
        "WHERE t.token_checksum = %s"
    )


_SQL: dict[tuple[str, tuple[str, ...]], str] = {}
# Person columns a caller may ask for with the token (graph.access: the profile fields).
PROFILE_COLUMNS = frozenset(
    {"name", "picture", "email", "email_verified_at", "birthday", "hometown",
     "current_city", "relationship_status", "likes"}
)  # fmt: skip


def _aware(value: Any) -> datetime | None:
    """A timestamp column as an aware datetime (SQLite hands back naive UTC ones)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _query(checksum: str) -> TokenFacts | None:
    found = _query_with(checksum, ())
    return None if found is None else found[0]


def _query_with(
    checksum: str, profile: tuple[str, ...]
) -> tuple[TokenFacts, tuple[Any, ...]] | None:
    """The token's facts and, from the same row, the person's `profile` columns."""
    key = (connection.vendor, profile)
    sql = _SQL.get(key)
    if sql is None:
        if not PROFILE_COLUMNS.issuperset(profile):
            raise ValueError(f"not a profile column: {sorted(set(profile) - PROFILE_COLUMNS)}")
        sql = _SQL[key] = _sql(profile)
    with prepared_cursor() as cursor:
        cursor.execute(sql, [checksum])
        row = cursor.fetchone()
    if row is None:
        return None
    return _facts(row[:FACT_COLUMNS]), tuple(row[FACT_COLUMNS:])


FACT_COLUMNS = 19


def _facts(row: tuple[Any, ...]) -> TokenFacts:
    (token_id, app_id, person_id, consent_id, scope, expires, created, client_id, status,
     approved, agreement, limits, active, member, mask, email_choice, last_used,
     consent_expires, revoked) = row  # fmt: skip
    expires_at, created_at = _aware(expires), _aware(created)
    assert expires_at is not None
    assert created_at is not None
    return TokenFacts(
        token_id=token_id,
        app_id=app_id,
        person_id=person_id,
        consent_id=consent_id,
        scope=scope,
        expires=expires_at,
        created=created_at,
        client_id=client_id,
        app_status=status,
        approved_permissions=tuple(_json(approved) or ()),
        agreement_signed=agreement is not None,
        app_limits=_json(limits) or {},
        person_is_active=bool(active),
        is_member=bool(member),
        permission_mask=mask or 0,
        email_choice=email_choice or "real",
        consent_last_used_at=_aware(last_used),
        consent_expires_at=_aware(consent_expires),
        consent_revoked=revoked is not None,
    )


# --- the shared cache (Redis) ---------------------------------------------------------


def cache_seconds() -> int:
    """How long facts stay cached; 0 (no cache) unless Redis is configured."""
    return int(getattr(settings, "TOKEN_CACHE_SECONDS", 0))


def _generation_seconds() -> int:
    """Generations outlive every entry cached under them; one that expired reads as
    changed, so letting them expire is safe and keeps Redis from collecting them."""
    return max(3600, 2 * cache_seconds())


def _generation_keys(consent_id: int | None, app_id: int, person_id: int) -> list[str]:
    return [
        f"{GENERATION_PREFIX}c:{consent_id}",
        f"{GENERATION_PREFIX}a:{app_id}",
        f"{GENERATION_PREFIX}p:{person_id}",
    ]


def _current_generations(keys: list[str]) -> list[str]:
    """The generations under `keys`, creating the missing ones (so that a later loss of
    one reads as a change)."""
    found = cache.get_many(keys)
    for key in keys:
        if key not in found:
            cache.add(key, secrets.token_hex(8), timeout=_generation_seconds())
    missing = [k for k in keys if k not in found]
    if missing:
        found.update(cache.get_many(missing))
    return [str(found.get(k, "")) for k in keys]


# checksum -> (consent id, app id, person id) of tokens this process has seen: a token's
# ids never change, so its entry and the generations it was cached under are read in ONE
# Redis round trip (MGET). A wrong or missing hint only costs the second round trip.
_ids_hint: dict[str, tuple[int | None, int, int]] = {}
MAX_IDS_HINTS = 50_000


def _cached(checksum: str, seconds: int) -> TokenFacts | None:
    key = ENTRY_PREFIX + checksum
    hint = _ids_hint.get(checksum)
    if hint is not None:
        hinted = _generation_keys(*hint)
        found = cache.get_many([key, *hinted])
        entry = found.get(key)
        current = found
    else:
        entry = cache.get(key)
        hinted, current = [], {}
    if entry is not None:
        facts, generations = entry
        keys = _generation_keys(facts.consent_id, facts.app_id, facts.person_id)
        if keys != hinted:
            current = cache.get_many(keys)
            if len(_ids_hint) >= MAX_IDS_HINTS:
                _ids_hint.clear()
            _ids_hint[checksum] = (facts.consent_id, facts.app_id, facts.person_id)
        if [current.get(k) for k in keys] == generations:
            return facts
    # Miss or stale: read the generations BEFORE the database, so that a revocation
    # committed after the read below replaces them and refuses this entry.
    facts = _query(checksum)
    if facts is None:
        return None
    keys = _generation_keys(facts.consent_id, facts.app_id, facts.person_id)
    generations = _current_generations(keys)
    fresh = _query(checksum)  # the row as of after the generations were read
    if fresh is None:
        return None
    lifetime = int((fresh.expires - timezone.now()).total_seconds())
    if lifetime > 0 and fresh.consent_id == facts.consent_id:
        cache.set(key, (fresh, generations), timeout=min(seconds, lifetime))
    return fresh


def token_facts(raw: str) -> TokenFacts | None:
    """The facts of the access token `raw`, or None for an unknown (or absurd) one.
    Whether it may be used is `TokenFacts.usable()`."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return None
    checksum = token_checksum(raw)
    seconds = cache_seconds()
    if seconds > 0:
        return _cached(checksum, seconds)
    return _query(checksum)


def usable_token_facts(raw: str) -> TokenFacts | None:
    """The facts of `raw` when it may be used right now (TokenFacts.usable), else None."""
    facts = token_facts(raw)
    return facts if facts is not None and facts.usable() else None


def usable_token_facts_with(
    raw: str, profile: tuple[str, ...]
) -> tuple[TokenFacts, tuple[Any, ...] | None] | None:
    """usable_token_facts(raw), and the person's `profile` columns read by the same
    query (one round trip less for a read that needs them), or None for them when the
    facts come from the token cache without a query, or no column is asked for."""
    if not profile or cache_seconds() > 0 or not raw or len(raw) > MAX_TOKEN_LENGTH:
        facts = usable_token_facts(raw)
        return None if facts is None else (facts, None)
    found = _query_with(token_checksum(raw), profile)
    if found is None or not found[0].usable():
        return None
    return found


@functools.cache
def _client_and_facts_sql(vendor: str) -> str:
    q = connection.ops.quote_name
    client = (
        "SELECT id, client_type, client_secret, status, registration_source "  # noqa: S608
        f"FROM {q(Application._meta.db_table)} WHERE client_id = %s"
    )
    return f"SELECT k.*, f.* FROM ({client}) k LEFT JOIN ({_sql()}) f ON 1 = 1"  # noqa: S608


CLIENT_COLUMNS = 5


def client_row_and_token_facts(
    client_id: str, raw: str
) -> tuple[tuple[Any, ...], TokenFacts | None] | None:
    """The application row of `client_id` (id, client_type, client_secret, status,
    registration_source) and the facts of the access token `raw` (None when unknown), in
    one statement: token introspection authenticates the client and reads the token in
    one round trip. None when there is no such client. Only without the token cache
    (where the facts come from Redis) and for a plausible token (not empty, not over
    MAX_TOKEN_LENGTH); the caller checks both."""
    with prepared_cursor() as cursor:
        cursor.execute(_client_and_facts_sql(connection.vendor), [client_id, token_checksum(raw)])
        rows = cursor.fetchmany(2)
    if len(rows) != 1:
        return None
    row = rows[0]
    facts = row[CLIENT_COLUMNS:]
    return tuple(row[:CLIENT_COLUMNS]), None if facts[0] is None else _facts(facts)


def access_token_for(raw: str) -> AccessToken | None:
    """The valid access token for a bearer string as a model instance, or None; for
    django-oauth-toolkit's own machinery. The read path uses `usable_token_facts`."""
    facts = usable_token_facts(raw)
    if facts is None:
        return None
    return (
        AccessToken.objects.select_related("application", "user", "consent")
        .filter(pk=facts.token_id)
        .first()
    )


def token_holder_may_act(application: Application, person: Person | None) -> bool:
    """Whether `application` may still act for `person` with a token or code it holds:
    the person's account is active, and the app is live or in development with the
    person holding a role on it (docs/rules.md rule 1, consentry.graph.release.app_usable).

    The one check every token use shares: TokenFacts.usable() asks the same of the lean
    query's columns (the Graph API, userinfo, introspection); refresh-token validation and
    the code exchange ask it here (consentry.oauth.validators)."""
    if person is None or not person.is_active:
        return False
    return application.is_usable_by(person.pk)


# --- invalidation ------------------------------------------------------------------------


def forget_tokens(
    *,
    consent_ids: Iterable[int] = (),
    app_ids: Iterable[int] = (),
    person_ids: Iterable[int] = (),
) -> None:
    """Make every process stop trusting cached facts of the tokens of these consents,
    apps and people, from their next request on. Call it from any write that can make a
    token unusable (revocation, narrowing, ban, suspension, deactivation, role change).

    The generations are replaced at once and again after commit: the first covers a
    crash between commit and the second; the second covers a reader that cached the
    old row between the first and the commit."""
    if cache_seconds() <= 0:
        return
    keys = [
        *(f"{GENERATION_PREFIX}c:{i}" for i in consent_ids),
        *(f"{GENERATION_PREFIX}a:{i}" for i in app_ids),
        *(f"{GENERATION_PREFIX}p:{i}" for i in person_ids),
    ]
    if not keys:
        return

    def replace() -> None:
        cache.set_many({k: secrets.token_hex(8) for k in keys}, timeout=_generation_seconds())

    replace()
    if connection.in_atomic_block:
        transaction.on_commit(replace)


def _forget_entry(checksum: str) -> None:
    if cache_seconds() <= 0 or not checksum:
        return
    key = ENTRY_PREFIX + checksum
    cache.delete(key)
    if connection.in_atomic_block:
        transaction.on_commit(lambda: cache.delete(key))


@receiver(post_delete, sender=AccessToken)
def _token_deleted(sender: Any, instance: AccessToken, **kwargs: Any) -> None:
    _forget_entry(instance.token_checksum)


@receiver(post_save, sender=AccessToken)
def _token_saved(sender: Any, instance: AccessToken, created: bool, **kwargs: Any) -> None:
    if not created:  # e.g. its scope narrowed (grants.actions.do_revoke_permission)
        _forget_entry(instance.token_checksum)


@receiver(post_save, sender=Application)
def _application_saved(sender: Any, instance: Application, created: bool, **kw: Any) -> None:
    if not created:  # status, review or limits may have changed
        forget_tokens(app_ids=[instance.pk])


@receiver(m2m_changed, sender=Application.members.through)
def _members_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        if isinstance(instance, Application):
            forget_tokens(app_ids=[instance.pk])
        else:  # changed from the person's side
            forget_tokens(person_ids=[instance.pk])


def _person_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    if not created and (update_fields is None or "is_active" in update_fields):
        forget_tokens(person_ids=[instance.pk])


post_save.connect(_person_saved, sender=settings.AUTH_USER_MODEL)
