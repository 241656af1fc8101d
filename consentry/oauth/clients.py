"""Client authentication on the machine lane: the common case, answered by one query.

A resource server introspecting tokens authenticates on every call with the same HTTP
Basic credentials (RFC 6749 2.3.1). ConsentryValidator.authenticate_client decides every
case (throttle, unknown and suspended clients, argon2 hashes to upgrade, secrets rotated
out with a grace period, client metadata documents); building its oauthlib request and
the Application model cost more than the check itself (issue "Performance").

`basic_client(header, address)` answers only the plain success: credentials decoded
exactly as django-oauth-toolkit decodes them, a confidential client whose stored secret
is Consentry's fast hash (consentry.oauth.hashers) and matches, whose app may
authenticate (rule 1), which was registered by hand (not a metadata document that may
need fetching again), and whose (client id, address) pair has no failure on record
(consentry.oauth.throttle). Anything else returns None, and the caller hands the request
to the full path, which answers it -- and counts a failure -- as it always has. So this
never answers "no": a wrong secret costs one HMAC here and is then refused, throttled and
counted by the validator.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from urllib.parse import unquote_plus

from django.db import connection

from consentry.db.prepared import prepared_cursor
from consentry.oauth import throttle
from consentry.oauth.hashers import ALGORITHM, ClientSecretHasher
from consentry.oauth.models import USABLE_STATUSES, Application


@dataclass(frozen=True, slots=True)
class Client:
    pk: int
    client_id: str


@functools.cache
def _sql(vendor: str) -> str:
    q = connection.ops.quote_name
    return (
        "SELECT id, client_type, client_secret, status, registration_source "  # noqa: S608
        f"FROM {q(Application._meta.db_table)} WHERE client_id = %s"
    )


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(client id, secret) from `Basic <base64>` as django-oauth-toolkit reads them
    (OAuth2Validator._authenticate_basic_auth: UTF-8, split at the first colon, each
    form-urldecoded), or None when the header is not that."""
    auth_type, _, encoded = header.partition(" ")
    if auth_type != "Basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


def plain_credentials(header: str, address: str) -> tuple[str, str] | None:
    """The (client id, secret) of these Basic credentials when the fast check may decide
    them: well formed, and no failure of the pair on record (the throttle's cache read)."""
    credentials = basic_credentials(header)
    if credentials is None:
        return None
    client_id, secret = credentials
    if not client_id or not secret or "\x00" in client_id:
        return None
    _wait, failed_before = throttle.check(client_id, address)
    if failed_before:  # a delay, or failures a success must clear: the validator's job
        return None
    return client_id, secret


def plainly_authenticates(
    secret: str, client_type: str, stored: str, status: str, source: str
) -> bool:
    """Whether `secret` authenticates the client of this application row (its
    client_type, client_secret, status and registration_source) without the validator."""
    return (
        client_type == Application.CLIENT_CONFIDENTIAL
        and status in USABLE_STATUSES
        and source == Application.RegistrationSource.MANUAL
        and stored.startswith(ALGORITHM + "$")
        and ClientSecretHasher().verify(secret, stored)
    )


def basic_client(header: str, address: str) -> Client | None:
    """The confidential client these Basic credentials plainly authenticate, or None for
    "let the validator decide" (see the module docstring)."""
    credentials = plain_credentials(header, address)
    if credentials is None:
        return None
    client_id, secret = credentials
    with prepared_cursor() as cursor:
        cursor.execute(_sql(connection.vendor), [client_id])
        rows = cursor.fetchmany(2)
    if len(rows) != 1:
        return None
    pk, client_type, stored, status, source = rows[0]
    if not plainly_authenticates(secret, client_type, stored, status, source):
        return None
    return Client(pk=int(pk), client_id=client_id)
