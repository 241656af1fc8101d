"""The Graph API's one error shape:

    {"error": {"code": "not_found", "message": "Not found.", "status": 404}}

for every 400, 401, 403, 404, 405, 429 and 500 under /v1/, including request validation
errors and unknown paths. Bearer errors also carry `WWW-Authenticate` (RFC 6750 3), rate
limits `Retry-After` (RFC 9110 10.2.3).

Every 404 is the same bytes: an unknown id, a person who is not a friend, a friend who is
withheld, another app's id and an unknown path cannot be told apart (docs/rules.md).
"""

from __future__ import annotations

import json

from django.http import HttpResponse

REALM = 'Bearer realm="consentry"'

MESSAGES = {
    400: "The request is not valid.",
    401: "A valid bearer token is required.",
    403: "The token lacks a permission this endpoint needs.",
    404: "Not found.",
    405: "Method not allowed.",
    429: "Too many requests.",
    500: "The request could not be completed.",
}


class GraphError(Exception):
    """An error answer; views raise it and the API renders it in the error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or MESSAGES[status])
        self.status = status
        self.code = code
        self.message = message or MESSAGES[status]
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str | None = None, headers: dict[str, str] | None = None
) -> HttpResponse:
    body = {"error": {"code": code, "message": message or MESSAGES[status], "status": status}}
    response = HttpResponse(
        json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )
    response["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def not_found() -> GraphError:
    return GraphError(404, "not_found")


def not_found_response() -> HttpResponse:
    return error_response(404, "not_found")


def invalid_token(present: bool) -> GraphError:
    """401 per RFC 6750 3.1: `error="invalid_token"` only when a token was sent."""
    header = f'{REALM}, error="invalid_token"' if present else REALM
    return GraphError(401, "invalid_token", headers={"WWW-Authenticate": header})


def insufficient_scope(permission: str) -> GraphError:
    header = f'{REALM}, error="insufficient_scope", scope="{permission}"'
    return GraphError(
        403,
        "insufficient_scope",
        f"This endpoint needs the {permission} permission.",
        headers={"WWW-Authenticate": header},
    )


def invalid_request(message: str) -> GraphError:
    return GraphError(400, "invalid_request", message)
