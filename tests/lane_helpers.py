"""Helpers for the machine lane's tests (consentry/web/lane.py): Django's WSGI handler
that counts the requests reaching it, and one WSGI call as a server makes it."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections

Response = tuple[int, dict[str, str], bytes]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Counting:
    """Django's WSGI handler, counting the requests that reach it."""

    def __init__(self) -> None:
        self.django = WSGIHandler()
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self.calls += 1
        return self.django(environ, start_response)


def call(
    app: WSGIApp,
    path: str,
    method: str = "GET",
    body: bytes = b"",
    query: str = "",
    content_type: str = "",
    headers: dict[str, str] | None = None,
    remote: str = "127.0.0.1",
    host: str = "testserver",
    environ_overrides: dict[str, Any] | None = None,
) -> Response:
    """(status, headers, body) of one request to `app`, with the environ a WSGI server
    builds (headers as HTTP_*; a Host header in `headers` replaces `host`)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "REMOTE_ADDR": remote,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    for name, value in (environ_overrides or {}).items():  # raw keys; None removes one
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    seen: list[tuple[str, list[tuple[str, str]]]] = []
    result = app(environ, lambda status, hdrs, *exc: seen.append((status, hdrs)))
    try:
        content = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, hdrs = seen[0]
    return int(status.split()[0]), dict(hdrs), content


@pytest.fixture(autouse=True)
def keep_the_test_connection() -> Any:
    """As Django's test client does: the test's transaction keeps its connection, which a
    request's end would otherwise close (CONN_MAX_AGE=0 with PostgreSQL's pool)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
