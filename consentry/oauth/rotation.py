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
import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from jwcrypto import jwt
from oauth2_provider.models import refresh_token_expire_timedelta
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.utils import jwk_from_pem
from oauthlib.common import generate_token

from consentry.db.prepared import prepared_cursor
from consentry.grants.actions import do_record_consent_use
from consentry.grants.models import Consent
from consentry.grants.permissions import fields_to_mask, mask_to_permissions
from consentry.graph.release import app_usable
from consentry.ledger.api import record_disclosure
from consentry.oauth.clients import Client
from consentry.oauth.models import AccessToken, Application, IDToken, RefreshToken
from consentry.oauth.pairwise import app_scoped_id
from consentry.oauth.tokens import _aware, _forget_entry, token_checksum
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
        "SELECT r.id, r.user_id, r.access_token_id, r.token_family, r.resource, "  # noqa: S608
        "t.scope, t.expires, t.token_checksum, a.authorization_grant_type, a.algorithm, "
        "a.status, "
        f"EXISTS (SELECT 1 FROM {m} m WHERE m.application_id = r.application_id "
        "AND m.person_id = r.user_id), "
        "p.is_active, p.last_login, p.name, p.picture, p.email, p.email_verified_at, "
        "c.id, c.permission_mask, c.email_choice, c.last_used_at, c.expires_at, c.revoked_at "
        f"FROM {r} r JOIN {t} t ON t.id = r.access_token_id "
        f"JOIN {a} a ON a.id = r.application_id JOIN {p} p ON p.id = r.user_id "
        f"LEFT JOIN {c} c ON c.person_id = r.user_id AND c.application_id = r.application_id "
        "WHERE r.token_checksum = %s AND r.revoked IS NULL AND r.application_id = %s"
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


def _insert(cursor: Any, model: type[Model], values: dict[str, Any]) -> int:
    """INSERT one row of `model` from {column: Python value} (each converted by its
    field, as the ORM does) and return its id."""
    fields = {f.column: f for f in model._meta.concrete_fields}
    columns = tuple(values)
    cursor.execute(
        _insert_sql(model, columns, connection.vendor),
        [fields[c].get_db_prep_save(values[c], connection) for c in columns],
    )
    return int(cursor.fetchone()[0])


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


@functools.cache
def _kid(pem: str) -> str:
    return str(jwk_from_pem(pem).thumbprint())


def _at_hash(access_token: str) -> str:
    """OpenID Connect Core 3.1.3.6 (oauthlib's id_token_hash with SHA-256)."""
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")


def _signed_id_token(claims: dict[str, Any]) -> str:
    """django-oauth-toolkit's finalize_id_token signature: RS256 with the site's key."""
    pem = oauth2_settings.OIDC_RSA_PRIVATE_KEY
    header = {"typ": "JWT", "alg": Application.RS256_ALGORITHM, "kid": _kid(pem)}
    token = jwt.JWT(header=json.dumps(header), claims=json.dumps(claims, default=str))
    token.make_signed_token(jwk_from_pem(pem))
    return str(token.serialize())


def rotate(client: Client, raw: str, issuer: str) -> bytes | None:
    """The token response for refreshing with `raw` by the authenticated `client`, or
    None for "let Django answer" (see the module docstring)."""
    try:
        with transaction.atomic():
            return _rotate(client, raw, issuer)
    except _HandOver:
        return None


def _rotate(client: Client, raw: str, issuer: str) -> bytes:
    now = timezone.now()
    with prepared_cursor() as cursor:
        cursor.execute(_facts_sql(connection.vendor), [token_checksum(raw), client.pk])
        rows = cursor.fetchmany(2)
        if len(rows) != 1:
            raise _HandOver
        (rt_id, person_id, old_at_id, family, resource, original_scope, at_expires,
         old_checksum, grant_type, algorithm, status, member, person_active, last_login,
         name, picture, email, email_verified_at, consent_id, mask, email_choice,
         last_used, consent_expires, consent_revoked) = rows[0]  # fmt: skip
        at_expires = _aware(at_expires)
        consent_expires = _aware(consent_expires)
        expire_delta = refresh_token_expire_timedelta()
        active = set(mask_to_permissions(mask or 0))
        original = original_scope.split()
        scopes = [s for s in original if s in active]
        openid = "openid" in original
        if (
            grant_type not in REFRESHABLE
            or _json(resource)
            or (expire_delta and at_expires + expire_delta <= now)
            or not person_active
            or not app_usable(status, is_member=bool(member))
            or consent_id is None
            or consent_revoked is not None
            or consent_expires is None
            or consent_expires <= now
            or not scopes
            or (openid and algorithm != Application.RS256_ALGORITHM)
        ):
            raise _HandOver
        # Spend it once (the full path's select_for_update and revoke, in one statement).
        cursor.execute(_claim_sql(connection.vendor), [now, now, rt_id])
        if cursor.rowcount != 1:
            raise _HandOver
        cursor.execute(_delete_sql(connection.vendor), [old_at_id])
        _forget_entry(old_checksum)

        access_token, refresh_token = generate_token(), generate_token()
        expires_in = int(oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS)
        body: dict[str, Any] = {
            "access_token": access_token,
            "expires_in": expires_in,
            "token_type": "Bearer",
            "scope": " ".join(scopes),
            "refresh_token": refresh_token,
        }
        id_token_id = None
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
            id_token_id = _insert(
                cursor, IDToken,
                {"user_id": person_id, "jti": uuid.UUID(claims["jti"]),
                 "application_id": client.pk, "expires": id_expires,
                 "scope": " ".join(original), "created": now, "updated": now},
            )  # fmt: skip
        new_at_id = _insert(
            cursor, AccessToken,
            {"user_id": person_id, "source_refresh_token_id": rt_id, "token": "",
             "token_checksum": token_checksum(access_token), "id_token_id": id_token_id,
             "application_id": client.pk, "expires": now + timedelta(seconds=expires_in),
             "scope": " ".join(scopes), "resource": [], "created": now, "updated": now,
             "consent_id": consent_id},
        )  # fmt: skip
        _insert(
            cursor, RefreshToken,
            {"user_id": person_id, "token": "", "token_checksum": token_checksum(refresh_token),
             "application_id": client.pk, "access_token_id": new_at_id,
             "token_family": family if isinstance(family, uuid.UUID) else uuid.UUID(family),
             "resource": [], "created": now, "updated": now, "revoked": None,
             "consent_id": consent_id},
        )  # fmt: skip
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
