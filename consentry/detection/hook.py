"""The Graph API's one hook into harvest detection.

`consentry.graph.access` notes what a call released (`note_release`, inside the call's
transaction, where the subject ids are known); `consentry.graph.api` reports the outcome
once the response body exists (`observe_response`, with the withheld count from `meta`) or
when a person lookup is answered 404 (`observe_not_found`). Both cost O(subjects in the
call): see consentry.detection.engine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from consentry.detection.engine import detector

logger = logging.getLogger("consentry.detection")

PERSON_ENDPOINT = "/v1/people/{id}"
_pending: ContextVar[tuple[int, int, str, Sequence[tuple[int, int]]] | None] = ContextVar(
    "consentry_detection_pending", default=None
)


def note_release(app_id: int, actor_id: int, endpoint: str, released: Sequence[Any]) -> None:
    """What this call releases (subject id, field mask), before the response is built."""
    _pending.set((app_id, actor_id, endpoint, released))


def observe_response(body: dict[str, Any]) -> dict[str, Any]:
    """The call's body is ready: count it (released subjects, withheld fields)."""
    pending = _pending.get()
    if pending is None:
        return body
    _pending.set(None)
    app_id, actor_id, endpoint, released = pending
    meta = body.get("meta") or {}
    try:
        detector().observe(
            app_id,
            actor_id,
            released,
            withheld_fields=int(meta.get("withheld_fields", 0)),
            person_lookup=endpoint == PERSON_ENDPOINT,
        )
    except Exception as exc:  # detection must never cost a person their answer
        logger.error("harvest detection failed: %s", type(exc).__name__, exc_info=exc)
    return body


def observe_not_found(caller: Any) -> None:
    """A /v1/people/{id} lookup by `caller` (graph.access.Caller) was answered 404."""
    _pending.set(None)
    try:
        detector().observe(caller.app_id, caller.person_id, (), not_found=True)
    except Exception as exc:
        logger.error("harvest detection failed: %s", type(exc).__name__, exc_info=exc)
