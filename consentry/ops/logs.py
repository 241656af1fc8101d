"""Structured JSON logs: one JSON object per line, with the request id of the request
being served (set by consentry.ops.middleware).

Never a secret or personal datum: request lines name the URL *pattern* (e.g.
`v1/people/<str:scoped_id>`), never the path, query string, body, headers or client
address; Django's own request loggers, which print paths, are reduced to their status.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

import orjson

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# Attributes a LogRecord always has; anything else passed in `extra=` is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Loggers whose messages quote request paths ("Not Found: /v1/people/abc").
_PATH_LOGGERS = ("django.request", "django.server", "django.security")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name.startswith(_PATH_LOGGERS):
            message = f"request answered {getattr(record, 'status_code', '')}".strip()
        else:
            message = record.getMessage()
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": message,
        }
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out and key not in {"request", "status_code"}:
                out[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info and not record.name.startswith(_PATH_LOGGERS):
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        try:
            # orjson: the same one-line JSON, several times faster; a line a request.
            return orjson.dumps(out).decode()
        except TypeError:  # a string orjson cannot encode (a lone surrogate)
            return json.dumps(out)
