"""One middleware, outermost: request id, request log line, latency metric, security
headers on every response (pages, API, errors, static files)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from consentry.ops import logs, metrics

logger = logging.getLogger("consentry.request")

INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_META = re.compile(rb'"withheld_subjects":\s*(\d+)|"withheld_fields":\s*(\d+)')

# Scripts only from this origin (pages work without JavaScript; nothing inline), never
# framed. Inline styles are allowed: Swagger UI on /v1/docs and matplotlib's SVG charts
# carry them, and a style cannot run code.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def _endpoint(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "static" if request.path.startswith(settings.STATIC_URL) else "unmatched"
    return "/" + str(match.route)


def _count_withheld(response: HttpResponse) -> None:
    """Withheld data is counted from the Graph API's `meta` (the last object of a body)."""
    if getattr(response, "streaming", False) or response.status_code != 200:
        return
    body = response.content
    meta = body.rfind(b'"meta"')
    if meta < 0:
        return
    subjects = fields = 0
    for found in _META.finditer(body, meta):
        subjects += int(found.group(1) or 0)
        fields += int(found.group(2) or 0)
    if subjects or fields:
        metrics.count_withheld(subjects, fields)


class OpsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if INCOMING_ID.match(incoming) else uuid.uuid4().hex
        # Not reset on the way out: Django's handler logs the response ("Not Found",
        # errors) after the middleware chain returns, and that line needs the id too.
        # The next request in this thread (or task) sets its own.
        logs.request_id.set(rid)
        start = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - start
        endpoint = _endpoint(request)
        status = response.status_code
        metrics.REQUEST_SECONDS.labels(
            endpoint=endpoint, method=request.method or "", status=f"{status // 100}xx"
        ).observe(elapsed)
        if endpoint.startswith("/v1/"):
            _count_withheld(response)
        response["X-Request-ID"] = rid
        self._secure(request, response)
        logger.info(
            "request",
            extra={
                "method": request.method,
                "endpoint": endpoint,
                "status": status,
                "ms": round(elapsed * 1000, 2),
            },
        )
        return response

    @staticmethod
    def _secure(request: HttpRequest, response: HttpResponse) -> None:
        response.setdefault("Content-Security-Policy", CSP)
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        response.setdefault("X-Content-Type-Options", "nosniff")
        response.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY or "same-origin")
        if settings.SECURE_HSTS_SECONDS and request.is_secure():
            response.setdefault(
                "Strict-Transport-Security",
                f"max-age={settings.SECURE_HSTS_SECONDS}; includeSubDomains",
            )
