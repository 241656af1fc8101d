"""Operations: /readyz, /metrics, JSON request logs with request ids and no personal
data, security headers on every response."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from consentry.ops import metrics
from consentry.ops.logs import JsonFormatter
from consentry.people.models import Person
from tests.graph_fixtures import direct_app, direct_consent, direct_token, get

pytestmark = pytest.mark.django_db


def sample(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def scrape(client: Client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def request_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    # Django's own request logger quotes paths; the formatter must reduce it.
    logs = [logging.getLogger("consentry.request"), logging.getLogger("django.request")]
    for log in logs:
        log.addHandler(handler)
    try:
        yield out
    finally:
        for log in logs:
            log.removeHandler(handler)


def test_readyz_reports_database_and_migrations(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["migrations"] == "ok"
    assert body["redis"] in {"ok", "not configured"}
    assert response["Cache-Control"].startswith("max-age=0")


def test_metrics_answer_loopback_and_the_bearer_secret_only(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("/metrics").status_code == 200
    proxied = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert proxied.status_code == 404
    outside = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert outside.status_code == 404
    monkeypatch.setenv("CONSENTRY_METRICS_TOKEN", "s3cret-metrics-token")
    ok = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token"
    )
    assert ok.status_code == 200
    wrong = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 404


def test_a_graph_read_moves_latency_release_withheld_and_ledger_metrics(
    client: Client, make_person: Callable[..., Person], django_capture_on_commit_callbacks: Any
) -> None:
    person = make_person(birthday="1990-01-02")
    app = direct_app()
    consent = direct_consent(person.pk, app, ["openid", "profile"])
    token = direct_token(consent, ["openid", "profile"])
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        response = get(client, "/v1/me", token, fields="name,birthday")
    assert response.status_code == 200
    assert response.json()["meta"]["withheld_fields"] >= 1
    after = scrape(client)
    for name, least in (
        ("consentry_ledger_appends_total", 1),
        ("consentry_graph_released_subjects_total", 1),
        ("consentry_graph_released_fields_total", 1),
        ("consentry_graph_withheld_fields_total", 1),
    ):
        assert sample(after, name) - sample(before, name) >= least, name
    assert 'endpoint="/v1/me"' in after
    assert "consentry_task_queue_depth" in after


def test_detector_firings_are_a_counter_any_capability_increments(client: Client) -> None:
    before = sample(scrape(client), "consentry_detector_firings_total")
    metrics.detector_fired("harvest")
    assert sample(scrape(client), "consentry_detector_firings_total") == before + 1


def test_request_log_is_json_with_request_id_and_no_path_or_query(
    client: Client, request_log: io.StringIO
) -> None:
    response = client.get(
        "/v1/people/some-scoped-id?fields=email", HTTP_X_REQUEST_ID="abc-12345678"
    )
    assert response["X-Request-ID"] == "abc-12345678"
    lines = [json.loads(line) for line in request_log.getvalue().splitlines()]
    assert {entry["logger"] for entry in lines} == {"consentry.request", "django.request"}
    assert all(entry["request_id"] == "abc-12345678" for entry in lines)
    line = next(entry for entry in lines if entry["logger"] == "consentry.request")
    assert line["msg"] == "request"
    assert line["endpoint"] == "/v1/people/<app_scoped_id>"
    assert line["status"] == 401
    assert "some-scoped-id" not in request_log.getvalue()
    assert "email" not in request_log.getvalue()
    generated = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\n{}")
    assert re.fullmatch(r"[0-9a-f]{32}", generated["X-Request-ID"])


def test_secrets_never_reach_the_log(client: Client, request_log: io.StringIO) -> None:
    client.post("/oauth/token/", {"client_secret": "hunter2-secret", "code": "the-code"})
    client.get("/v1/me", HTTP_AUTHORIZATION="Bearer leaked-token-value")
    text = request_log.getvalue()
    assert text
    for secret in ("hunter2-secret", "the-code", "leaked-token-value"):
        assert secret not in text


@pytest.mark.parametrize("path", ["/", "/healthz", "/v1/me", "/no/such/page", "/ledger/checkpoint"])
def test_security_headers_on_every_response(client: Client, path: str) -> None:
    response = client.get(path)
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "camera=()" in response["Permissions-Policy"]


def test_hsts_only_over_tls(client: Client, settings: object) -> None:
    assert "Strict-Transport-Security" not in client.get("/")
    settings.SECURE_HSTS_SECONDS = 31536000  # type: ignore[attr-defined]
    secure = client.get("/", secure=True)
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")
