"""Middleware only where it is needed.

Machine endpoints -- the Graph API, the OAuth token, introspection, userinfo, revocation
and JWKS endpoints, the discovery documents and the health check -- authenticate every
request by bearer token or client credentials, never by cookie: they need no session,
CSRF check, signed-in user, language or messages, and each of those
costs every call (issue "Performance"). `PagesOnly(...)` wraps such a middleware so that
it runs for pages only; settings.MIDDLEWARE names the wrapped ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

# Paths served without cookies. The authorization endpoint and RP-initiated logout are
# pages (they need the session) and are not here.
MACHINE_PREFIXES: tuple[str, ...] = (
    "/v1/",
    "/oauth/token/",
    "/oauth/introspect/",
    "/oauth/userinfo/",
    "/oauth/revoke/",
    "/oauth/jwks/",
    "/.well-known/",
    "/healthz",
)


def is_machine_path(path: str) -> bool:
    return path.startswith(MACHINE_PREFIXES) or path == "/v1"


class _PagesOnly:
    """Mixed in before a middleware class: it runs for pages only. A subclass of the
    wrapped class, so Django's checks (admin needs sessions, auth, messages) see it."""

    get_response: Callable[[HttpRequest], HttpResponse]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_machine_path(request.path_info):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> Any:
        hook = getattr(super(), "process_view", None)
        if hook is None or is_machine_path(request.path_info):
            return None
        return hook(request, view, args, kwargs)


def _pages_only(path: str) -> type:
    inner = import_string(path)
    return type(inner.__name__, (_PagesOnly, inner), {"__module__": __name__})


SessionMiddleware = _pages_only("django.contrib.sessions.middleware.SessionMiddleware")
LocaleMiddleware = _pages_only("django.middleware.locale.LocaleMiddleware")
CsrfViewMiddleware = _pages_only("django.middleware.csrf.CsrfViewMiddleware")
AuthenticationMiddleware = _pages_only("django.contrib.auth.middleware.AuthenticationMiddleware")
MessageMiddleware = _pages_only("django.contrib.messages.middleware.MessageMiddleware")
OTPMiddleware = _pages_only("django_otp.middleware.OTPMiddleware")
