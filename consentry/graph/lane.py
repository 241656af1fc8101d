"""`/v1/me` and `/v1/me/friends` on the machine lane (consentry.web.lane).

Apps call these for every person they serve, and Django's handler, middleware and
ninja's parameter parsing cost more than the read itself (issue "Performance"), so the
plain, successful GET is answered here, and only it. Each function takes the WSGI
environ and the (empty) body and returns the 200 body, or None to hand the request to
Django, which then answers it exactly as it always has. What decides the answer is
shared with the views (consentry.graph.api): the same caller (`access_caller_by_bearer`),
rate limits (`check_limits`), field parsing and reads (`read_me`, `read_friends`, which
write the ledger entry before the answer exists), harvest detection and withheld-data
metric.

The lane takes a request only when it is what a well-behaved app sends: a GET without a
body, `Authorization: Bearer <token>` naming a usable token, and a query string of only
the endpoint's parameters, each at most once, with values the view would accept (`fields`
naming known fields, `limit` a plain number in range, `after` a cursor issued for this
app, person and endpoint). Anything else goes to Django before anything is counted.

Two moments need care, because Django must not do again what the lane did:

- once the rate limits have counted the request, their outcome is left in the environ
  (`LIMITS_APPLIED`) and the API's views take it from there instead of counting again
  (a 429 is Django's answer, counted once);
- from then on the request is the lane's: on PostgreSQL a read's ledger entry commits
  by itself, so a failure after it (or any failure but the read's own refusals) is
  answered here with the view's 500 (`web.lane.Failed`), never handed to Django, which
  would read, and ledger, a second time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import parse_qsl

import orjson

from consentry.detection import hook as detection
from consentry.graph import access
from consentry.graph.cursor import MAX_CURSOR_LENGTH, decode_cursor
from consentry.graph.errors import GraphError, error_response
from consentry.graph.limits import RateLimited
from consentry.graph.release import may_list_friends
from consentry.oauth.edge import CONTROL, bad_value
from consentry.ops import metrics
from consentry.web.lane import Failed

logger = logging.getLogger("consentry.graph")

# The environ key under which the lane leaves what the rate limits decided for a request
# it then handed to Django: None (counted, within the limits) or the RateLimited raised.
LIMITS_APPLIED = "consentry.graph.limits_applied"

ME_PARAMS = frozenset({"fields"})
FRIENDS_PARAMS = frozenset({"fields", "limit", "after"})
LIMIT = re.compile(r"[1-9][0-9]{0,3}")
FIELDS_MAX = 200  # graph.api.FIELDS' max_length


def _query(environ: dict[str, Any], allowed: frozenset[str]) -> dict[str, str] | None:
    """The query parameters as Django's QueryDict reads them, or None when there is one
    the view would refuse or read differently: unknown, repeated, blank, not ASCII (the
    OAuth edge's rules, consentry.oauth.edge.bad_value, and more)."""
    raw = str(environ.get("QUERY_STRING", ""))
    if not raw:
        return {}
    if not raw.isascii() or len(raw) > 1024:
        return None
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=len(allowed))
    except ValueError:  # more parameters than the endpoint has
        return None
    if bad_value(pairs) is not None:  # repeated, control characters, too long
        return None
    params = dict(pairs)
    if not params.keys() <= allowed:
        return None
    for value in params.values():
        if not value or not value.isascii() or value != value.strip():
            return None
    return params


def _caller(environ: dict[str, Any], profile: tuple[str, ...] = ()) -> access.Caller | None:
    """The caller of a GET, as the API's HttpBearer would authenticate it. (A GET that
    declares a body never gets here: web.lane hands it to Django unread.)"""
    if environ.get("REQUEST_METHOD") != "GET":
        return None
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw or " " in raw or CONTROL.search(raw):
        return None
    return access.access_caller_by_bearer(raw, profile)


def _fields(params: dict[str, str]) -> tuple[str, ...] | None:
    raw = params.get("fields")
    if raw is not None and len(raw) > FIELDS_MAX:
        return None
    try:
        return access.parse_fields(raw)
    except GraphError:
        return None


def _owned(
    environ: dict[str, Any], caller: access.Caller, read: Callable[[], dict[str, Any]]
) -> bytes | None:
    """Rule 4 for the request, counted once, then the read and its answer.

    Within the limits, the request is the lane's from here on: a refusal the read raises
    before disclosing anything (404, the daily volume's 429) is left to Django, which
    gets it again, uncounted (LIMITS_APPLIED); any other failure is answered here as the
    view answers it (500), never handed over, since on PostgreSQL the ledger entry may be
    committed already and Django would read, and ledger, a second time. Over the limits,
    the outcome is left for Django, which answers the 429."""
    try:
        access.check_limits(caller)
    except RateLimited as exc:
        environ[LIMITS_APPLIED] = exc
        return None
    except Exception as exc:
        _fail(exc)
    environ[LIMITS_APPLIED] = None
    try:
        body = read()
    except (GraphError, RateLimited):
        return None
    except Exception as exc:
        _fail(exc)
    try:
        detection.observe_response(body)
        meta = body["meta"]
        subjects, fields = meta.get("withheld_subjects", 0), meta["withheld_fields"]
        if subjects or fields:
            metrics.count_withheld(subjects, fields)
        return orjson.dumps(body)
    except Exception as exc:
        _fail(exc)


def _fail(exc: Exception) -> NoReturn:
    """Answer the view's 500 from the lane (graph.api._server_error logs the same)."""
    logger.error("graph request failed: %s", type(exc).__name__, exc_info=exc)
    raise Failed("500 Internal Server Error", error_response(500, "server_error").content) from exc


def me(environ: dict[str, Any], body: bytes) -> bytes | None:
    params = _query(environ, ME_PARAMS)
    if params is None:
        return None
    fields = _fields(params)
    if fields is None:
        return None
    caller = _caller(environ, profile=fields)  # the profile comes with the token
    if caller is None:
        return None
    return _owned(environ, caller, lambda: access.read_me(caller, fields))


def friends(environ: dict[str, Any], body: bytes) -> bytes | None:
    params = _query(environ, FRIENDS_PARAMS)
    if params is None:
        return None
    limit = params.get("limit")
    if limit is not None and (not LIMIT.fullmatch(limit) or int(limit) > access.MAX_PAGE):
        return None
    after = params.get("after")
    if after is not None and len(after) > MAX_CURSOR_LENGTH:
        return None
    caller = _caller(environ)
    if caller is None or not may_list_friends(caller.app, caller.viewer):
        return None
    if (
        after is not None
        and decode_cursor(after, "friends", caller.app_id, caller.person_id, 1) is None
    ):
        return None
    fields = _fields(params)
    if fields is None:
        return None
    page = access.DEFAULT_PAGE if limit is None else int(limit)
    return _owned(environ, caller, lambda: access.read_friends(caller, fields, page, after))
