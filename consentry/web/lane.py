"""The machine lane: the OAuth and OpenID documents answered without Django's handler.

Discovery (`/.well-known/openid-configuration`), the authorization server metadata
(`/.well-known/oauth-authorization-server`) and the JWKS (`/oauth/jwks/`) are the same
bytes for every request to one site address: clients and resource servers fetch them
often, and Django's handler and middleware cost ten times what writing them does (issue
"Performance"). As WhiteNoise does for static files, this WSGI wrapper answers them
itself:

- the first GET of a document for a site address goes through Django as any request
  does (host validation, the views, every middleware); a 200 is kept, headers and body,
  without its request id;
- later GETs of that document for the same address -- the same Host, scheme and
  forwarded scheme, no query string -- get the kept answer, with their own request id,
  request log line and latency metric (consentry.ops.middleware), as any request has.

Anything else (another method, a query string, an address not seen yet, any other path)
goes to Django untouched. The kept documents change only with the configuration (site
address, OIDC keys), which a restart applies; at most `MAX_SITES` addresses are kept.

Token introspection and UserInfo (consentry.oauth.lane) are answered here too, per
request, when they are the plain successful case: the first 200 of each for a site
address comes from Django and teaches the lane the address (Django validated its Host)
and the endpoint's response headers (security headers, Cache-Control, CORS); later
requests for that address run the lane's function between Django's request_started and
request_finished signals (so database connections are handled as for any request), and
whatever the function does not answer -- every error, every unusual request -- goes to
Django with its body intact.
"""

from __future__ import annotations

import functools
import io
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core import signals
from django.db import connection
from django.urls import resolve

from consentry.ops import logs, metrics
from consentry.ops.middleware import INCOMING_ID

logger = logging.getLogger("consentry.request")

DOCUMENTS = frozenset(
    {"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/oauth/jwks/"}
)
MAX_SITES = 16
MAX_BODY = 8192  # larger bodies go to Django, which applies its own limits
# A Django response with one of these depends on more than the site address: not learnt.
PERSONAL_HEADERS = frozenset({"set-cookie", "vary", "content-language"})


@functools.cache
def _site_keys() -> tuple[str, ...]:
    """The request variables Django builds the documents' absolute URLs and security
    headers from (a forwarded header only where the settings make Django read it, so
    that junk in one does not split the kept documents)."""
    keys = ["HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "wsgi.url_scheme", "SCRIPT_NAME"]
    if settings.SECURE_PROXY_SSL_HEADER:
        keys.append(settings.SECURE_PROXY_SSL_HEADER[0])
    if settings.USE_X_FORWARDED_HOST:
        keys.append("HTTP_X_FORWARDED_HOST")
    if settings.USE_X_FORWARDED_PORT:
        keys.append("HTTP_X_FORWARDED_PORT")
    return tuple(keys)


StartResponse = Callable[..., Any]
Kept = tuple[str, list[tuple[str, str]], bytes]
Handler = Callable[[dict[str, Any], bytes], bytes | None]


class Failed(Exception):
    """Raised by a lane function that must answer an error itself: it has done what
    cannot be done twice (a Graph read's ledger entry is committed), so the request must
    not go to Django. `status` is the WSGI status line, `body` the JSON error."""

    def __init__(self, status: str, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


# The methods whose 200 may teach the lane a path's response headers: those it answers
# itself. (Django answers OPTIONS /oauth/token/ with 200 and an HTML content type; learnt,
# those headers went out with every token response after it.)
LEARN_FROM = {"/oauth/token/": "POST", "/oauth/introspect/": "POST"}


def _learnable(path: str, environ: dict[str, Any]) -> bool:
    """Whether Django's answer to this request shows the headers of the lane's answers:
    the method the lane answers, and no Origin (a browser's request gets a per-request
    CORS header on the token endpoint, which must not be replayed to anyone else)."""
    method = environ.get("REQUEST_METHOD")
    return method == LEARN_FROM.get(path, "GET") and not environ.get("HTTP_ORIGIN")


@functools.cache
def _handlers() -> dict[str, Handler]:
    from consentry.graph import lane as graph_lane
    from consentry.oauth import lane as oauth_lane

    return {
        "/oauth/introspect/": oauth_lane.introspect,
        "/oauth/userinfo/": oauth_lane.userinfo,
        "/oauth/token/": oauth_lane.refresh,
        "/v1/me": graph_lane.me,
        "/v1/me/friends": graph_lane.friends,
    }


class MachineLane:
    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.kept: dict[tuple[str, ...], Kept] = {}
        self.learnt: dict[tuple[str, ...], list[tuple[str, str]]] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        handler = _handlers().get(path)
        if handler is not None:
            return self._machine(path, handler, environ, start_response)
        if (
            path not in DOCUMENTS
            or environ.get("REQUEST_METHOD") != "GET"
            or environ.get("QUERY_STRING")
        ):
            return self.app(environ, start_response)
        key = (path, *(str(environ.get(name, "")) for name in _site_keys()))
        kept = self.kept.get(key)
        if kept is None:
            return self._through_django(key, environ, start_response)
        return self._answer(path, kept, environ, start_response)

    def _answer(
        self, path: str, kept: Kept, environ: dict[str, Any], start_response: StartResponse
    ) -> list[bytes]:
        start = time.perf_counter()
        rid = _request_id(environ)
        status, headers, body = kept
        start_response(status, [*headers, ("X-Request-ID", rid)])
        _observe(path, "GET", start, 200)
        return [body]

    def _machine(
        self, path: str, handler: Handler, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        key = (path, *(str(environ.get(name, "")) for name in _site_keys()))
        headers = self.learnt.get(key)
        if headers is None:
            if not _learnable(path, environ):
                return self.app(environ, start_response)
            return self._learn(key, environ, start_response)
        start = time.perf_counter()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self.app(environ, start_response)
        if length < 0 or length > MAX_BODY:
            return self.app(environ, start_response)
        if length and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            # Django does not read a GET's body; neither may the lane (a client that
            # declares one and never sends it would hold the thread).
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(length) if length else b""
        rid = _request_id(environ)
        signals.request_started.send(sender=self.__class__, environ=environ)
        status = "200 OK"
        answered = False
        try:
            answer = handler(environ, body)
            answered = answer is not None
        except Failed as failed:  # after a disclosure: answered here, never twice
            status, answer = failed.status, failed.body
        except Exception as exc:  # Django answers it, as it would have
            logger.warning("machine lane handed over", extra={"error": type(exc).__name__})
            answer = None
        finally:
            if answered:  # outside the handler's try: an answer is never handed over
                _keep_connection()
            signals.request_finished.send(sender=self.__class__)
        if answer is None:
            environ["wsgi.input"] = io.BytesIO(body)
            return self.app(environ, start_response)
        start_response(
            status, [*headers, ("Content-Length", str(len(answer))), ("X-Request-ID", rid)]
        )
        _observe(path, str(environ.get("REQUEST_METHOD", "")), start, int(status[:3]))
        return [answer]

    def _learn(
        self, key: tuple[str, ...], environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        def remember(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            names = {name.lower() for name, _ in headers}
            if (
                status.startswith("200 ")
                and not names & PERSONAL_HEADERS
                and len(self.learnt) < MAX_SITES * len(_handlers())
            ):
                self.learnt[key] = [
                    (n, v)
                    for n, v in headers
                    if n.lower() not in ("content-length", "x-request-id")
                ]
            return start_response(status, headers, *exc)

        return self.app(environ, remember)

    def _through_django(
        self, key: tuple[str, ...], environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        seen: list[tuple[str, list[tuple[str, str]]]] = []

        def remember(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            seen.append((status, headers))
            return start_response(status, headers, *exc)

        response = self.app(environ, remember)
        if not seen or not seen[0][0].startswith("200 ") or len(self.kept) >= MAX_SITES * 3:
            return response
        try:
            body = b"".join(response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
        status, headers = seen[0]
        if not any(name.lower() == "set-cookie" for name, _ in headers):
            self.kept[key] = (
                status,
                [(n, v) for n, v in headers if n.lower() != "x-request-id"],
                body,
            )
        return [body]


def _keep_connection() -> None:
    """PostgreSQL: the thread keeps its pooled connection for its next request
    (consentry/db/postgresql); SQLite's connections persist anyway."""
    keep = getattr(connection, "keep_between_requests", None)
    if keep is not None:
        keep()


def _request_id(environ: dict[str, Any]) -> str:
    """The request id consentry.ops.middleware would give this request, set for its log
    lines."""
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    rid = incoming if INCOMING_ID.match(incoming) else uuid.uuid4().hex
    logs.request_id.set(rid)
    return rid


def _observe(path: str, method: str, start: float, status: int) -> None:
    """The latency metric and request log line of an answer given here."""
    elapsed = time.perf_counter() - start
    endpoint = _endpoint(path)
    metrics.REQUEST_SECONDS.labels(
        endpoint=endpoint, method=method, status=f"{status // 100}xx"
    ).observe(elapsed)
    logger.info(
        "request",
        extra={
            "method": method,
            "endpoint": endpoint,
            "status": status,
            "ms": round(elapsed * 1000, 2),
        },
    )


@functools.cache
def _endpoint(path: str) -> str:
    """The URL pattern the request log and the latency metric name (as
    consentry.ops.middleware does for a request through Django)."""
    return "/" + str(resolve(path).route)
