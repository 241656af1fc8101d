"""Django's own refusals (a malformed request, a failed CSRF check) and its 500 in each
endpoint's error shape: the Graph API's one shape under /v1/, RFC 6749 5.2 JSON on the OAuth
back-channel endpoints and documents, a plain page elsewhere.

Django's default 400 handler runs the CSRF check again (`requires_csrf_token`), which
reads the body once more: a form body Django refuses (one not in UTF-8, say) then raised
inside the handler and escaped Django as a 500 from the WSGI server. These handlers
read nothing from the request but its path.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf as django_csrf
from django.views import defaults

from consentry.graph.errors import error_response

JSON_PATHS = (
    "/oauth/token/",
    "/oauth/revoke/",
    "/oauth/introspect/",
    "/oauth/userinfo/",
    "/oauth/jwks/",
    "/.well-known/",
)


def _oauth_json(status: int, error: str, description: str) -> HttpResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: never touches the body, never logs request data."""
    description = "The request is malformed or too large."
    if request.path.startswith("/v1"):
        return error_response(400, "invalid_request", description)
    if request.path.startswith(JSON_PATHS):
        return _oauth_json(400, "invalid_request", description)
    return HttpResponse(
        "<!doctype html><title>Bad request (400)</title><h1>Bad request (400)</h1>"
        f"<p>{description}</p>",
        status=400,
    )


def oauth_server_error() -> HttpResponse:
    """The OAuth endpoints' 500 (RFC 6749 5.2 shape): handler500's, and the machine
    lane's when a UserInfo answer fails after its disclosure."""
    return _oauth_json(500, "server_error", "The request could not be completed.")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the API's and the OAuth endpoints' JSON error, Django's page elsewhere.
    (Django has logged the failure already, without request data in the message.)"""
    if request.path.startswith("/v1"):
        return error_response(500, "server_error")
    if request.path.startswith(JSON_PATHS):
        return oauth_server_error()
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a JSON endpoint answers a failed check in JSON (only a POST
    with a CSRF cookie to a read-only JSON document gets here); pages keep Django's."""
    description = "Cross-site request refused."
    if request.path.startswith("/v1"):
        return error_response(403, "forbidden", description)
    if request.path.startswith(JSON_PATHS):
        return _oauth_json(403, "invalid_request", description)
    return django_csrf.csrf_failure(request, reason)
