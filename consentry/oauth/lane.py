"""Token introspection, UserInfo and the refresh grant on the machine lane
(consentry.web.lane).

Resource servers call these two endpoints for every request they serve, so Django's
handler and middleware -- more than the answer itself costs (issue "Performance") -- are
skipped for the plain, successful case, and only for it. Each function here takes the
WSGI environ and the request body and returns the 200 body, or None to hand the request
to Django, which then answers it exactly as it always has (errors, throttling, failure
counting, anything unusual). What decides the answer is shared with the views:
`views.introspection` and `views.userinfo_claims`, the same token check
(consentry.oauth.tokens) and, for UserInfo, the same ledger entry before the answer.

The lane takes a request only when it is what a well-behaved client sends:

- no query string; for introspection a `application/x-www-form-urlencoded` body (UTF-8)
  holding `token` and at most `token_type_hint`, each once, without control characters
  (consentry.oauth.edge's rules), and HTTP Basic credentials that consentry.oauth.clients
  plainly accepts;
- for UserInfo a GET, or a POST without a body, with a bearer token in the Authorization
  header that is usable and carries the `openid` scope;
- for the token endpoint a form of exactly `grant_type=refresh_token` and a
  `refresh_token` of token characters, with Basic credentials as for introspection; what
  the refresh then needs is consentry.oauth.rotation's to decide.
"""

from __future__ import annotations

import functools
import io
import logging
import re
from typing import Any
from urllib.parse import parse_qsl

import orjson
from django.core.handlers.wsgi import WSGIRequest, get_script_name
from django.urls import set_script_prefix
from django.utils.http import parse_header_parameters
from oauth2_provider.settings import oauth2_settings

from consentry.oauth.clients import basic_client, plain_credentials, plainly_authenticates
from consentry.oauth.edge import CONTROL, bad_value, basic_credentials_problem
from consentry.oauth.rotation import rotate
from consentry.oauth.tokens import (
    MAX_TOKEN_LENGTH,
    cache_seconds,
    client_row_and_token_facts,
    usable_token_facts_with,
)
from consentry.oauth.views import (
    CLAIM_COLUMNS,
    introspection,
    introspection_of,
    userinfo_claims,
)
from consentry.web.lane import Failed
from consentry.web.refusals import oauth_server_error

logger = logging.getLogger("consentry.oauth")

FORM_TYPE = "application/x-www-form-urlencoded"
INTROSPECTION_FIELDS = frozenset({"token", "token_type_hint"})
REFRESH_FIELDS = frozenset({"grant_type", "refresh_token"})
# What oauthlib's generate_token and the usual token generators produce (RFC 6749 A.17).
TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~+/-]+=*")


@functools.lru_cache(maxsize=64)
def _plain_form_type(content_type: str) -> bool:
    """A form in UTF-8 as Django reads the header: the media type, and no parameter but
    `charset=utf-8` (any case, spacing or quoting: `;charset=UTF-8` is what Authlib and
    others send)."""
    media, params = parse_header_parameters(content_type)
    return media == FORM_TYPE and all(
        k == "charset" and v.lower() == "utf-8" for k, v in params.items()
    )


def _form(environ: dict[str, Any], body: bytes) -> dict[str, str] | None:
    """The body's parameters as Django's QueryDict reads them, or None when the body is
    anything but a small, clean form."""
    if not _plain_form_type(str(environ.get("CONTENT_TYPE", ""))):
        return None
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=8)
    if bad_value(pairs) is not None:
        return None
    return dict(pairs)


def _basic_post(environ: dict[str, Any], body: bytes) -> tuple[dict[str, str], str] | None:
    """(the form, the Authorization header) of a POST without a query string whose body
    is a clean form and whose credentials are plain HTTP Basic, or None."""
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("QUERY_STRING"):
        return None
    try:
        form = _form(environ, body)
    except ValueError:  # more fields than max_num_fields
        return None
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    if form is None or basic_credentials_problem(header) is not None:
        return None
    return form, header


def introspect(environ: dict[str, Any], body: bytes) -> bytes | None:
    posted = _basic_post(environ, body)
    if posted is None or not posted[0].keys() <= INTROSPECTION_FIELDS:
        return None
    form, header = posted
    address, raw = str(environ.get("REMOTE_ADDR", "")), form.get("token", "")
    if cache_seconds() > 0 or not raw or len(raw) > MAX_TOKEN_LENGTH:
        client = basic_client(header, address)
        if client is None:
            return None
        return orjson.dumps(introspection(client.pk, client.client_id, raw))
    # The client and the token in one statement (one round trip on PostgreSQL).
    credentials = plain_credentials(header, address)
    if credentials is None:
        return None
    client_id, secret = credentials
    found = client_row_and_token_facts(client_id, raw)
    if found is None:
        return None
    (pk, client_type, stored, status, source), facts = found
    if not plainly_authenticates(secret, client_type, stored, status, source):
        return None
    usable = facts if facts is not None and facts.usable() else None
    return orjson.dumps(introspection_of(int(pk), client_id, usable))


def refresh(environ: dict[str, Any], body: bytes) -> bytes | None:
    posted = _basic_post(environ, body)
    if posted is None:
        return None
    form, header = posted
    if form.keys() != REFRESH_FIELDS or form["grant_type"] != "refresh_token":
        return None
    raw = form["refresh_token"]
    if len(raw) > MAX_TOKEN_LENGTH or not TOKEN_CHARACTERS.fullmatch(raw):
        return None
    if environ.get("HTTP_ORIGIN"):  # a browser's: Django adds the app's CORS header
        return None
    credentials = plain_credentials(header, str(environ.get("REMOTE_ADDR", "")))
    if credentials is None:
        return None
    return rotate(credentials, raw, _issuer(environ))


def _issuer(environ: dict[str, Any]) -> str:
    """The ID token's `iss`, as django-oauth-toolkit derives it: the setting, or (in
    development) the request's own address."""
    if oauth2_settings.OIDC_ISS_ENDPOINT:
        return str(oauth2_settings.OIDC_ISS_ENDPOINT)
    # reverse() inside reads the thread's script prefix, which Django's handler sets from
    # each request it serves: set it from this one's SCRIPT_NAME, as Django would.
    set_script_prefix(get_script_name(environ))
    request = WSGIRequest({**environ, "wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0"})
    return str(oauth2_settings.oidc_issuer(request))


def userinfo(environ: dict[str, Any], body: bytes) -> bytes | None:
    if environ.get("REQUEST_METHOD") not in ("GET", "POST") or environ.get("QUERY_STRING"):
        return None
    if body or environ.get("CONTENT_LENGTH", "") not in ("", "0"):
        return None
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw or CONTROL.search(header):
        return None
    found = usable_token_facts_with(raw, CLAIM_COLUMNS)
    if found is None or "openid" not in found[0].scopes:
        return None
    try:
        return orjson.dumps(userinfo_claims(*found))
    except Exception as exc:
        # On PostgreSQL the claims' ledger entry commits by itself: the request is the
        # lane's, answered as Django's handler500 answers it, never read a second time.
        logger.error("userinfo failed: %s", type(exc).__name__, exc_info=exc)
        raise Failed("500 Internal Server Error", oauth_server_error().content) from exc
