"""The Graph API under /v1/ (docs/rules.md "Interfaces"), with django-ninja.

Views parse typed input, call one read in consentry.graph.access and return its JSON.
Authentication is an OAuth 2.0 bearer token (RFC 6750) issued by consentry.oauth. The
OpenAPI document is at /v1/openapi.json and the readable docs at /v1/docs.

Refusals, in the order they are checked:
- 401 `invalid_token`: no token, or a token that is unknown, expired or revoked, whose
  consent is revoked or expired, of an app that is suspended or banned, or of an app in
  development used by someone without a role on it. (Suspended and banned apps get 401,
  not 404: the token itself is no longer good, whatever the path.)
- 429 `rate_limited` with `Retry-After`: rule 4 (consentry.graph.limits).
- 400 `invalid_request`: unknown field, bad limit, bad cursor.
- 403 `insufficient_scope`: an endpoint that needs user_friends / user_posts without it.
- 404 `not_found`: one body for every unknown or forbidden person and unknown path.
Data that the release rule withholds is not an error: it is omitted, and `meta` counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any

import orjson
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.params.functions import Query as QueryParam
from ninja.security import HttpBearer

from consentry.detection import hook as detection
from consentry.graph import access
from consentry.graph.cursor import MAX_CURSOR_LENGTH
from consentry.graph.errors import (
    MESSAGES,
    GraphError,
    error_response,
    invalid_request,
    invalid_token,
    not_found_response,
)
from consentry.graph.lane import LIMITS_APPLIED
from consentry.graph.limits import RateLimited

logger = logging.getLogger("consentry.graph")

DESCRIPTION = """\
Read a person's data, and their friends' data, with that person's OAuth access token.

Every datum passes the release rule (docs/rules.md): the app must be live and approved for the
permission, the person's grant must cover it, and a friend's datum also needs that
friend's own grant to the app or their friend-sharing opt-in, within their audience.
Withheld data is omitted and counted in `meta`. Every released datum is written to the
disclosure ledger, which the person can inspect.

Errors always have the shape `{"error": {"code": ..., "message": ..., "status": ...}}`.
There is no lookup by email, phone number or name.
"""


class Bearer(HttpBearer):
    """RFC 6750 bearer authentication resolving to an `access.Caller`."""

    def authenticate(self, request: HttpRequest, token: str) -> access.Caller | None:
        return access.access_caller_by_bearer(token)


api = NinjaAPI(
    title="Consentry Graph API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="graph",
    auth=Bearer(),
)


# --- Response documentation (the views return pre-rendered JSON of exactly this shape) ---


class ErrorDetail(Schema):
    code: str
    message: str
    status: int


class ErrorOut(Schema):
    error: ErrorDetail


class PersonOut(Schema):
    id: str = Field(description="App-scoped id: stable for this app, useless to any other.")
    name: str | None = None
    picture: str | None = None
    email: str | None = Field(None, description="Only ever the acting person's own address.")
    birthday: date | None = None
    hometown: str | None = None
    current_city: str | None = None
    relationship_status: str | None = None
    likes: list[str] | None = None


class PersonMeta(Schema):
    withheld_fields: int


class PersonResponse(Schema):
    data: PersonOut
    meta: PersonMeta


class Paging(Schema):
    next: str | None = Field(description="Opaque cursor for `after`; null on the last page.")


class FriendsMeta(Schema):
    withheld_subjects: int = Field(description="Friends on this page that are not listed.")
    withheld_fields: int = Field(description="Requested fields withheld of listed friends.")


class FriendsResponse(Schema):
    data: list[PersonOut]
    paging: Paging
    meta: FriendsMeta


class PostOut(Schema):
    id: str
    created_time: str
    message: str


class PostsResponse(Schema):
    data: list[PostOut]
    paging: Paging
    meta: PersonMeta


ERRORS: dict[int, type[Schema]] = {code: ErrorOut for code in (400, 401, 403, 404, 429, 500)}
FIELDS = QueryParam(
    None,
    description="Comma-separated: " + ", ".join(access.GRAPH_FIELDS) + ". Default: id,name.",
    max_length=200,
)
FRIENDS_LIMIT = QueryParam(access.DEFAULT_PAGE, ge=1, le=access.MAX_PAGE)
POSTS_LIMIT = QueryParam(access.DEFAULT_POSTS_PAGE, ge=1, le=access.MAX_POSTS_PAGE)
AFTER = QueryParam(
    None, description="The `paging.next` cursor of the previous page.", max_length=MAX_CURSOR_LENGTH
)


def _json(body: dict[str, Any]) -> HttpResponse:
    detection.observe_response(body)  # harvest detection (consentry.detection)
    # orjson: the same compact UTF-8 JSON as json.dumps(separators=(",", ":"),
    # ensure_ascii=False), several times faster on a 5,000-friend page.
    response = HttpResponse(orjson.dumps(body), content_type="application/json")
    response["Cache-Control"] = "no-store"  # personal data (RFC 6750 5.3 / RFC 9111)
    return response


def _begin(request: HttpRequest, *params: str) -> access.Caller:
    """The authenticated caller, within rule 4's limits, asking with no query parameter
    but `params` (a misspelt `limt` is refused, not silently ignored)."""
    caller: access.Caller = request.auth  # type: ignore[attr-defined]
    if LIMITS_APPLIED in request.META:
        # The machine lane counted this request already and handed it over (graph.lane).
        limited = request.META[LIMITS_APPLIED]
        if limited is not None:
            raise limited
    else:
        access.check_limits(caller)
    if not set(request.GET).issubset(params):
        takes = ", ".join(params) or "none"
        raise invalid_request(f"Unknown query parameter. This endpoint takes: {takes}.")
    return caller


# --- Endpoints --------------------------------------------------------------------------


@api.get("/me", response={200: PersonResponse, **ERRORS}, summary="The acting person")
def me(request: HttpRequest, fields: str | None = FIELDS) -> HttpResponse:
    """The acting person's own fields that the grant and the token cover."""
    caller = _begin(request, "fields")
    return _json(access.read_me(caller, access.parse_fields(fields)))


@api.get("/me/friends", response={200: FriendsResponse, **ERRORS}, summary="Friends")
def friends(
    request: HttpRequest,
    fields: str | None = FIELDS,
    limit: int = FRIENDS_LIMIT,
    after: str | None = AFTER,
) -> HttpResponse:
    """The acting person's friends whom the release rule lists (needs user_friends), in
    a stable order. A page covers `limit` friendships; withheld friends are counted in
    `meta.withheld_subjects`, so a page may list fewer than `limit`."""
    caller = _begin(request, "fields", "limit", "after")
    return _json(access.read_friends(caller, access.parse_fields(fields), limit, after))


@api.get("/me/posts", response={200: PostsResponse, **ERRORS}, summary="Own posts")
def posts(
    request: HttpRequest,
    limit: int = POSTS_LIMIT,
    after: str | None = AFTER,
) -> HttpResponse:
    """The acting person's own posts, newest first (needs user_posts)."""
    caller = _begin(request, "limit", "after")
    return _json(access.read_posts(caller, limit, after))


@api.get("/people/{app_scoped_id}", response={200: PersonResponse, **ERRORS}, summary="One person")
def person(request: HttpRequest, app_scoped_id: str, fields: str | None = FIELDS) -> HttpResponse:
    """The acting person, or one of their listed friends, by app-scoped id. Anything
    else -- unknown, not a friend, withheld, another app's id -- is the same 404."""
    caller = _begin(request, "fields")
    return _json(access.read_person(caller, app_scoped_id, access.parse_fields(fields)))


# --- Errors: one shape everywhere -------------------------------------------------------


@api.exception_handler(GraphError)
def _graph_error(request: HttpRequest, exc: GraphError) -> HttpResponse:
    if exc.status == 404 and isinstance(getattr(request, "auth", None), access.Caller):
        detection.observe_not_found(request.auth)  # type: ignore[attr-defined]
    return error_response(exc.status, exc.code, exc.message, exc.headers)


@api.exception_handler(RateLimited)
def _rate_limited(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    return error_response(
        429,
        "rate_limited",
        f"Too many requests ({exc.reason}).",
        {"Retry-After": str(exc.retry_after)},
    )


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    err = invalid_token(present="Authorization" in request.headers)
    return error_response(err.status, err.code, err.message, err.headers)


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = []
    for item in exc.errors[:5]:
        loc = ".".join(str(part) for part in item.get("loc", ()) if part not in ("query", "path"))
        problems.append(f"{loc}: {item.get('msg', 'invalid')}" if loc else item.get("msg", ""))
    return error_response(400, "invalid_request", "; ".join(problems) or MESSAGES[400])


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return not_found_response()


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    status = exc.status_code if exc.status_code in MESSAGES else 400
    if status == 404:
        return not_found_response()
    return error_response(status, "invalid_request" if status == 400 else "error")


@api.exception_handler(SuspiciousOperation)
@api.exception_handler(BadRequest)
def _bad_request(request: HttpRequest, exc: Exception) -> HttpResponse:
    """Django's refusals of a malformed request (too many parameters, a body too large,
    a bad multipart body ...) are the client's error, not the server's: 400, logged
    below ERROR and without request data."""
    logger.info("graph request refused: %s", type(exc).__name__)
    return error_response(400, "invalid_request", "The request is malformed or too large.")


@api.exception_handler(Exception)
def _server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    # The message names the failure, never request data: no tokens or personal data in logs.
    logger.error("graph request failed: %s", type(exc).__name__, exc_info=exc)
    return error_response(500, "server_error")


def json_method_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a ninja path view so that its plain-text 405 takes the error shape, HEAD is
    answered, and a repeated query parameter is refused whichever copy is bad."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            repeated = [name for name, values in request.GET.lists() if len(values) > 1]
        except (SuspiciousOperation, BadRequest) as exc:
            return _bad_request(request, exc)
        if repeated:
            # Last-wins would let `fields=name&fields=bogus` and its reverse disagree.
            name = repeated[0][:40]
            return error_response(400, "invalid_request", f"Parameter {name!r} is repeated.")
        if request.method == "HEAD":
            return _head(view, request, *args, **kwargs)
        response = view(request, *args, **kwargs)
        if response.status_code == 405:
            return error_response(405, "method_not_allowed", headers={"Allow": response["Allow"]})
        return response

    return wrapped


def _head(
    view: Callable[..., HttpResponse], request: HttpRequest, *args: Any, **kwargs: Any
) -> HttpResponse:
    """HEAD is GET without the body (RFC 9110 9.3.2). Its status and headers still tell
    the app something (that a friend is listed, say), so it is read, limited and
    ledgered exactly like the GET it stands for."""
    request.method = "GET"
    try:
        response = view(request, *args, **kwargs)
    finally:
        request.method = "HEAD"
    length = len(response.content)
    response.content = b""
    response["Content-Length"] = str(length)
    return response


@csrf_exempt
def unknown_path(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any /v1/ path the API does not have: the same 404 as an unknown person."""
    return not_found_response()
