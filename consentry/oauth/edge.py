"""Bad input stopped at the edge of the OAuth endpoints, before any query or write.

A NUL byte reaches PostgreSQL as an error (text columns cannot hold it) and so used to
surface as a 500 wherever a parameter was looked up or stored; repeated parameters were
resolved last-wins, which RFC 6749 3.1 forbids ("parameters MUST NOT be included more
than once"); and Django's own refusals (too many fields, a body too large) came back as
HTML from endpoints that speak JSON. `OAuthEdgeMiddleware` answers all of these with a
400 in the endpoint's own shape: RFC 6749 5.2 JSON for the back-channel endpoints, the
error page for the browser-facing ones (authorization and logout).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote_plus

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.template.response import TemplateResponse

# C0 controls and DEL; what no OAuth parameter, client id or secret may contain.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A `%` not followed by two hex digits: Django reads it literally, but oauthlib re-parses
# the URL and raises ValueError on it (a 500 at every OAuth endpoint).
BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
BROWSER_PATHS = ("/oauth/authorize/", "/oauth/logout/")
# Parameters a browser form legitimately repeats (the consent screen's checkboxes).
REPEATABLE_IN_FORMS = frozenset({"permission"})
MAX_PARAMETER_LENGTH = 4096


def bad_value(values: Iterable[tuple[str, str]]) -> str | None:
    """Why these (name, value) pairs are refused, or None."""
    seen: set[str] = set()
    for name, value in values:
        if CONTROL.search(name) or CONTROL.search(value):
            return f"parameter {_shown(name)!r} contains a control character"
        if len(value) > MAX_PARAMETER_LENGTH:
            return f"parameter {_shown(name)!r} is too long"
        if name in seen:
            return f"parameter {_shown(name)!r} is repeated"
        seen.add(name)
    return None


def _shown(name: str) -> str:
    return CONTROL.sub("?", name)[:40]


def _pairs(query: object, skip_repeats: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, values in query.lists():  # type: ignore[attr-defined]
        kept = values[:1] if name in skip_repeats else values
        pairs.extend((name, v) for v in kept)
    return pairs


def basic_credentials_problem(header: str) -> str | None:
    """A Basic Authorization header whose decoded credentials hold control characters."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "control character in the Authorization header" if CONTROL.search(header) else None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None  # oauthlib refuses it as invalid_client
    # RFC 6749 2.3.1: the id and secret are form-urlencoded inside Basic, and oauthlib
    # decodes them; a %00 would reach the database as a NUL.
    if CONTROL.search(decoded) or CONTROL.search(unquote_plus(decoded)):
        return "control character in the client credentials"
    return None


class OAuthEdgeMiddleware:
    """See the module docstring. Applies to /oauth/ and /.well-known/ only."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(("/oauth/", "/.well-known/")):
            return self.get_response(request)
        try:
            problem = self._problem(request)
        except (SuspiciousOperation, BadRequest, MultiPartParserError) as exc:
            problem = _suspicious_message(exc)
        if problem is not None:
            return refusal(request, problem)
        return self.get_response(request)

    def _problem(self, request: HttpRequest) -> str | None:
        browser = request.path.startswith(BROWSER_PATHS)
        if BAD_PERCENT.search(request.META.get("QUERY_STRING", "")):
            return "malformed percent-encoding in the query string"
        problem = bad_value(_pairs(request.GET))
        if problem is None and request.method == "POST":
            repeatable = REPEATABLE_IN_FORMS if browser else frozenset()
            problem = bad_value(_pairs(request.POST, repeatable))
            if problem is None and not browser:
                query_names = set(request.GET)
                if query_names & set(request.POST):
                    problem = "a parameter is sent both in the query and in the body"
        if problem is None:
            problem = basic_credentials_problem(request.META.get("HTTP_AUTHORIZATION", ""))
        return problem


def _suspicious_message(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "TooManyFieldsSent":
        return "too many parameters"
    if name == "RequestDataTooBig":
        return "request body too large"
    return "malformed request"


def refusal(request: HttpRequest, description: str) -> HttpResponse:
    """400 `invalid_request`: JSON (RFC 6749 5.2) on back-channel endpoints, the error
    page on the authorization and logout pages. Never echoes the bad value."""
    if request.path.startswith(BROWSER_PATHS):
        page = TemplateResponse(
            request,
            "oauth/consent.html",
            {"error": {"error": "invalid_request", "description": description}},
            status=400,
        )
        page["Content-Security-Policy"] = "frame-ancestors 'none'; form-action 'self'"
        return page.render()
    response = JsonResponse(
        {"error": "invalid_request", "error_description": description}, status=400
    )
    response["Cache-Control"] = "no-store"
    return response
