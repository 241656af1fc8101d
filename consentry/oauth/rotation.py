"""The refresh grant's plain case, answered by a few statements (the machine lane).

A client refreshing its tokens (RFC 6749 6) spent 10 ms in django-oauth-toolkit and
oauthlib: 28 statements through the ORM for what is, in the common case, one read and
five writes (issue "Performance"). `rotate(client, raw, issuer)` does that common case
with the same outcome, row for row, as ConsentryValidator on django-oauth-toolkit's
TokenView (tests/test_machine_lane_refresh.py compares the two):

- the refresh token is found by its SHA-256, unrevoked, issued to this client, with its
  access token, no RFC 8707 resource, and not past REFRESH_TOKEN_EXPIRE_SECONDS after
  that access token's expiry; the client's grant type allows refresh; the person is
  active and the app may serve them (rule 1); their consent is active with at least one
  permission (rule 2);
- it is spent once: `UPDATE ... SET revoked WHERE revoked IS NULL` claims it, so of two
  concurrent refreshes one wins and the other goes to the full path, which sees reuse
  and revokes the token family (RFC 9700 4.14.2), as it does for django-oauth-toolkit's
  own race;
- the old access token is deleted (django-oauth-toolkit's `RefreshToken.revoke`), a new
  access token carries the old one's scope narrowed to what the consent grants now, a new
  refresh token continues the family, and the consent's use is recorded;
- with `openid` in the scope an ID token is signed (RS256, django-oauth-toolkit's claims
  and header), its row saved, and its claims written to the ledger (`oidc:id_token`) in
  the same transaction: if anything fails, nothing was issued.

Anything else returns None before any write (or after a rolled-back one), and the lane
hands the request to Django, which answers it exactly as it always has.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import RSAKey
from oauth2_provider.models import refresh_token_expire_timedelta
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.utils import jwk_from_pem
from oauthlib.common import UNICODE_ASCII_CHARACTER_SET

from consentry.db.prepared import prepared_cursor
from consentry.grants.actions import do_record_consent_use
from consentry.grants.models import Consent
from consentry.grants.permissions import fields_to_mask, mask_to_permissions
from consentry.graph.release import app_usable
from consentry.ledger.api import record_disclosure
from consentry.oauth.clients import Client, plainly_authenticates
from consentry.oauth.models import AccessToken, Application, IDToken, RefreshToken
from consentry.oauth.pairwise import app_scoped_id
from consentry.oauth.tokens import _aware, _forget_entry, _json, token_checksum
from consentry.oauth.validators import (
    CLAIM_FIELD,
    ENDPOINT_ID_TOKEN,
    ConsentryValidator,
    relay_address,
)
from consentry.people.models import Person

# The grant types whose clients may refresh (django-oauth-toolkit's GRANT_TYPE_MAPPING;
# Consentry registers authorization-code clients only).
REFRESHABLE = frozenset({Application.GRANT_AUTHORIZATION_CODE})


Row = dict[str, Any]  # {column: Python value}


class _HandOver(Exception):
    """Raised inside the transaction to roll it back and leave the request to Django."""


@functools.cache
def _facts_sql(vendor: str) -> str:
    q = connection.ops.quote_name
    r, t = q(RefreshToken._meta.db_table), q(AccessToken._meta.db_table)
    a, p = q(Application._meta.db_table), q(Person._meta.db_table)
    c = q(Consent._meta.db_table)
    m = q(Application.members.through._meta.db_table)
    return (
        "SELECT a.id, a.client_type, a.client_secret, a.registration_source, "  # noqa: S608
        "r.id, r.user_id, r.access_token_id, r.token_family, r.resource, t.scope, "
        "t.expires, t.token_checksum, a.authorization_grant_type, a.algorithm, "
        "a.status, "
        f"EXISTS (SELECT 1 FROM {m} m WHERE m.application_id = r.application_id "
        "AND m.person_id = r.user_id), "
        "p.is_active, p.last_login, p.name, p.picture, p.email, p.email_verified_at, "
        "c.id, c.permission_mask, c.email_choice, c.last_used_at, c.expires_at, c.revoked_at "
        f"FROM {r} r JOIN {t} t ON t.id = r.access_token_id "
        f"JOIN {a} a ON a.id = r.application_id JOIN {p} p ON p.id = r.user_id "
        f"JOIN {c} c ON c.person_id = r.user_id AND c.application_id = r.application_id "
        "WHERE r.token_checksum = %s AND r.revoked IS NULL AND a.client_id = %s"
        # The consent is locked first, as its revocation locks it (then the tokens): in the
        # other order a revocation racing a refresh deadlocked (PostgreSQL; SQLite has one
        # writer). KEY SHARE is what the new tokens' foreign keys would take at commit.
        + (" FOR KEY SHARE OF c" if vendor == "postgresql" else "")
    )


@functools.cache
def _claim_sql(vendor: str) -> str:
    q = connection.ops.quote_name
    return (
        f"UPDATE {q(RefreshToken._meta.db_table)} SET revoked = %s, updated = %s, "  # noqa: S608
        "access_token_id = NULL WHERE id = %s AND revoked IS NULL"
    )


@functools.cache
def _delete_sql(vendor: str) -> str:
    q = connection.ops.quote_name
    return f"DELETE FROM {q(AccessToken._meta.db_table)} WHERE id = %s"  # noqa: S608


@functools.cache
def _insert_sql(model: type[Model], columns: tuple[str, ...], vendor: str) -> str:
    q = connection.ops.quote_name
    return (
        f"INSERT INTO {q(model._meta.db_table)} ({', '.join(map(q, columns))}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))}) RETURNING {q('id')}"
    )


# Columns whose Python values (str, int, None) go to the driver as they are, and
# timestamps (always aware ones here), which go as the backend adapts them; the rest
# (UUIDs, JSON) are converted by their field, as the ORM does.
_AS_IS = frozenset({"CharField", "TextField", "ForeignKey", "IntegerField", "BigIntegerField"})


def _timestamp(value: datetime | None, conn: Any) -> Any:
    return conn.ops.adapt_datetimefield_value(value)


@functools.cache
def _converters(model: type[Model], columns: tuple[str, ...]) -> tuple[Any, ...]:
    fields = {f.column: f for f in model._meta.concrete_fields}

    def converter(field: Any) -> Any:
        kind = field.get_internal_type()
        if kind in _AS_IS:
            return None
        return _timestamp if kind == "DateTimeField" else field.get_db_prep_save

    return tuple(converter(fields[c]) for c in columns)


def _prepared_values(model: type[Model], values: Row) -> list[Any]:
    columns = tuple(values)
    return [
        v if convert is None else convert(v, connection)
        for v, convert in zip(values.values(), _converters(model, columns), strict=True)
    ]


def _insert(cursor: Any, model: type[Model], values: Row) -> int:
    """INSERT one row of `model` from {column: Python value} and return its id."""
    cursor.execute(
        _insert_sql(model, tuple(values), connection.vendor), _prepared_values(model, values)
    )
    return int(cursor.fetchone()[0])


@functools.cache
def _signing_key(pem: str) -> tuple[RSAKey, str]:
    """The site's RSA key, parsed once, and its kid (django-oauth-toolkit's: the JWK
    thumbprint)."""
    return RSAKey.import_key(pem), str(jwk_from_pem(pem).thumbprint())


def _at_hash(access_token: str) -> str:
    """OpenID Connect Core 3.1.3.6 (oauthlib's id_token_hash with SHA-256)."""
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")


def _signed_id_token(claims: dict[str, Any]) -> str:
    """django-oauth-toolkit's finalize_id_token signature: RS256 with the site's key
    (signed with joserfc, which does in 0.02 ms what jwcrypto's JWS does in 0.2)."""
    key, kid = _signing_key(oauth2_settings.OIDC_RSA_PRIVATE_KEY)
    header = {"typ": "JWT", "alg": Application.RS256_ALGORITHM, "kid": kid}
    return joserfc_jwt.encode(header, claims, key, algorithms=[Application.RS256_ALGORITHM])


# oauthlib's generate_token: 30 characters from its alphabet, chosen by the OS's random
# source; rejection sampling on bytes (248 = 4 x 62) instead of a SystemRandom call each.
TOKEN_ALPHABET = UNICODE_ASCII_CHARACTER_SET
TOKEN_LENGTH = 30
_UNBIASED = 256 - 256 % len(TOKEN_ALPHABET)


def new_token() -> str:
    chars: list[str] = []
    while len(chars) < TOKEN_LENGTH:
        chars.extend(
            TOKEN_ALPHABET[b % len(TOKEN_ALPHABET)] for b in os.urandom(32) if b < _UNBIASED
        )
    return "".join(chars[:TOKEN_LENGTH])


def _write(
    cursor: Any, now: datetime, rt_id: int, old_at_id: int,
    id_row: Row | None, at_row: Row, rt_row: Row,
) -> bool:  # fmt: skip
    """Spend the refresh token (the full path's select_for_update and revoke, in one
    guarded UPDATE: False when another request spent it first), delete its access token
    and insert the new rows, one statement each (SQLite, where a statement costs no round
    trip)."""
    cursor.execute(_claim_sql(connection.vendor), [now, now, rt_id])
    if cursor.rowcount != 1:
        return False
    cursor.execute(_delete_sql(connection.vendor), [old_at_id])
    at_row["id_token_id"] = None if id_row is None else _insert(cursor, IDToken, id_row)
    rt_row["access_token_id"] = _insert(cursor, AccessToken, at_row)
    _insert(cursor, RefreshToken, rt_row)
    return True


@functools.cache
def _one_statement_sql(
    vendor: str, id_columns: tuple[str, ...] | None, at_columns: tuple[str, ...],
    rt_columns: tuple[str, ...],
) -> str:  # fmt: skip
    """WITH claim (the guarded UPDATE), then the DELETE and INSERTs, each from `claim` so
    that they write nothing when it lost; values cast to their columns' types, which
    PostgreSQL does not infer for parameters in a SELECT list."""
    q = connection.ops.quote_name

    def insert(model: type[Model], columns: tuple[str, ...], link: str, frm: str) -> str:
        """INSERT ... SELECT the row's values and `link` (column = expression) FROM `frm`."""
        fields: dict[str, Any] = {f.column: f for f in model._meta.concrete_fields}
        names = [q(c) for c in columns]
        values = [f"%s::{fields[c].cast_db_type(connection)}" for c in columns]
        if link:
            column, _, expression = link.partition(" = ")
            names.append(q(column))
            values.append(expression)
        return (
            f"INSERT INTO {q(model._meta.db_table)} ({', '.join(names)}) "  # noqa: S608
            f"SELECT {', '.join(values)} FROM {frm} RETURNING {q('id')}"
        )

    r, t = q(RefreshToken._meta.db_table), q(AccessToken._meta.db_table)
    parts = [
        f"claim AS (UPDATE {r} SET revoked = %s, updated = %s, access_token_id = NULL "  # noqa: S608
        "WHERE id = %s AND revoked IS NULL RETURNING id)",
        f"gone AS (DELETE FROM {t} WHERE id = %s AND EXISTS (SELECT 1 FROM claim))",  # noqa: S608
    ]
    id_link, id_from = "id_token_id = NULL::bigint", "claim"
    if id_columns is not None:
        parts.append(f"idt AS ({insert(IDToken, id_columns, '', 'claim')})")
        id_link, id_from = "id_token_id = idt.id", "idt"
    parts.append(f"nat AS ({insert(AccessToken, at_columns, id_link, id_from)})")
    parts.append(f"nrt AS ({insert(RefreshToken, rt_columns, 'access_token_id = nat.id', 'nat')})")
    return (
        f"WITH {', '.join(parts)} "  # noqa: S608
        "SELECT (SELECT count(*) FROM claim), (SELECT count(*) FROM nrt)"
    )


def _write_in_one(
    cursor: Any, now: datetime, rt_id: int, old_at_id: int,
    id_row: Row | None, at_row: Row, rt_row: Row,
) -> bool:  # fmt: skip
    """_write as one statement of data-modifying WITH queries (PostgreSQL): one round
    trip instead of six."""
    params: list[Any] = [now, now, rt_id, old_at_id]
    for model, row in ((IDToken, id_row), (AccessToken, at_row), (RefreshToken, rt_row)):
        if row is not None:
            params += _prepared_values(model, row)
    sql = _one_statement_sql(
        connection.vendor, None if id_row is None else tuple(id_row), tuple(at_row),
        tuple(rt_row),
    )  # fmt: skip
    cursor.execute(sql, params)
    claimed, inserted = cursor.fetchone()
    return bool(claimed == 1 and inserted == 1)


def rotate(credentials: tuple[str, str], raw: str, issuer: str) -> bytes | None:
    """The token response for refreshing with `raw` by the client of `credentials`
    (client id, secret), or None for "let Django answer" (see the module docstring)."""
    try:
        with transaction.atomic():
            return _rotate(credentials, raw, issuer)
    except _HandOver:
        return None


def _rotate(credentials: tuple[str, str], raw: str, issuer: str) -> bytes:
    now = timezone.now()
    client_id, secret = credentials
    with prepared_cursor() as cursor:
        cursor.execute(_facts_sql(connection.vendor), [token_checksum(raw), client_id])
        rows = cursor.fetchmany(2)
        if len(rows) != 1:
            raise _HandOver
        (app_id, client_type, stored_secret, source, rt_id, person_id, old_at_id, family,
         resource, original_scope, at_expires, old_checksum, grant_type, algorithm, status,
         member, person_active, last_login,
         name, picture, email, email_verified_at, consent_id, mask, email_choice,
         last_used, consent_expires, consent_revoked) = rows[0]  # fmt: skip
        at_expires = _aware(at_expires)
        consent_expires = _aware(consent_expires)
        expire_delta = refresh_token_expire_timedelta()
        active = set(mask_to_permissions(mask or 0))
        original = original_scope.split()
        if original != original_scope.strip().split(" "):
            raise _HandOver  # oauthlib splits on single spaces only: its reading decides
        scopes = [s for s in original if s in active]
        openid = "openid" in original
        if not plainly_authenticates(secret, client_type, stored_secret, status, source):
            raise _HandOver  # the validator decides, and counts a failure
        client = Client(pk=int(app_id), client_id=client_id)
        if (
            grant_type not in REFRESHABLE
            or _json(resource)
            or (expire_delta and at_expires + expire_delta <= now)
            or not person_active
            or not app_usable(status, is_member=bool(member))
            or consent_revoked is not None
            or consent_expires is None
            or consent_expires <= now
            or not scopes
            or (openid and algorithm != Application.RS256_ALGORITHM)
        ):
            raise _HandOver
        access_token, refresh_token = new_token(), new_token()
        expires_in = int(oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS)
        body: dict[str, Any] = {
            "access_token": access_token,
            "expires_in": expires_in,
            "token_type": "Bearer",
            "scope": " ".join(scopes),
            "refresh_token": refresh_token,
        }
        id_row = None
        fields: set[str] = set()
        if openid:
            claims, id_expires = _id_token_claims(
                client, person_id, original, access_token, issuer, now,
                person={"name": name, "picture": picture, "email": email,
                        "email_verified": email_verified_at is not None,
                        "last_login": _aware(last_login)},
                relay=email_choice == "relay",
            )  # fmt: skip
            body["id_token"] = _signed_id_token(claims)
            fields = {CLAIM_FIELD[k] for k in claims if k in CLAIM_FIELD}
            id_row = {"user_id": person_id, "jti": uuid.UUID(claims["jti"]),
                      "application_id": client.pk, "expires": id_expires,
                      "scope": " ".join(original), "created": now, "updated": now}  # fmt: skip
        at_row = {
            "user_id": person_id, "source_refresh_token_id": rt_id, "token": "",
            "token_checksum": token_checksum(access_token), "application_id": client.pk,
            "expires": now + timedelta(seconds=expires_in), "scope": " ".join(scopes),
            "resource": [], "created": now, "updated": now, "consent_id": consent_id,
        }  # fmt: skip
        rt_row = {
            "user_id": person_id, "token": "", "token_checksum": token_checksum(refresh_token),
            "application_id": client.pk,
            "token_family": family if isinstance(family, uuid.UUID) else uuid.UUID(family),
            "resource": [], "created": now, "updated": now, "revoked": None,
            "consent_id": consent_id,
        }  # fmt: skip
        write = _write_in_one if connection.vendor == "postgresql" else _write
        if not write(cursor, now, rt_id, old_at_id, id_row, at_row, rt_row):
            raise _HandOver  # spent meanwhile: the full path sees the reuse
        _forget_entry(old_checksum)
    do_record_consent_use(
        Consent(
            pk=consent_id,
            person_id=person_id,
            application_id=client.pk,
            permission_mask=mask,
            email_choice=email_choice,
            last_used_at=_aware(last_used) or now,  # NOT NULL
            expires_at=consent_expires,
            revoked_at=None,
        ),
        now,
    )
    if openid:  # last: the ledger head's lock is held until commit
        record_disclosure(
            app_id=client.pk,
            actor_id=person_id,
            endpoint=ENDPOINT_ID_TOKEN,
            released=[(person_id, fields_to_mask(fields))] if fields else [],
            token_id=None,  # as on the full path, which ledgers before saving the tokens
        )
    return orjson.dumps(body)


def _id_token_claims(
    client: Client,
    person_id: int,
    scopes: list[str],
    access_token: str,
    issuer: str,
    now: datetime,
    person: dict[str, Any],
    relay: bool,
) -> tuple[dict[str, Any], datetime]:
    """oauthlib's add_id_token claims (aud, iat, at_hash), then ConsentryValidator's
    per-scope claims and django-oauth-toolkit's iss, exp, auth_time and jti."""
    claims: dict[str, Any] = {
        "aud": client.client_id,
        "iat": int(time.time()),
        "at_hash": _at_hash(access_token),
    }
    values = {
        "sub": app_scoped_id(client.pk, person_id),
        "name": person["name"],
        "picture": person["picture"],
        "email": relay_address(client.pk, person_id) if relay else person["email"],
        "email_verified": person["email_verified"],
    }
    scope_of = ConsentryValidator.oidc_claim_scope
    claims.update({k: v for k, v in values.items() if scope_of.get(k) in scopes})
    expires = now + timedelta(seconds=oauth2_settings.ID_TOKEN_EXPIRE_SECONDS)
    auth_time = person["last_login"] or now
    claims.update(
        iss=issuer,
        exp=int(expires.timestamp()),
        auth_time=int(auth_time.timestamp()),
        jti=str(uuid.uuid4()),
    )
    return claims, expires
