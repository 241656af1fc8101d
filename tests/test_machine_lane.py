"""The machine lane (consentry/web/lane.py): the OAuth and OpenID documents answered
without Django's handler, byte for byte what Django answers, and nothing else taken from
Django."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.handlers.wsgi import WSGIHandler

from consentry.ops import metrics
from consentry.web.lane import DOCUMENTS, MachineLane
from tests.lane_helpers import Counting, call

pytestmark = pytest.mark.django_db


def without_id(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != "X-Request-ID"}


@pytest.mark.parametrize("path", sorted(DOCUMENTS))
def test_a_document_is_django_s_answer_kept(path: str) -> None:
    """The first GET goes through Django; the next ones are answered by the lane with the
    same status, headers (security headers included) and bytes, each its own request id."""
    inner = Counting()
    lane = MachineLane(inner)
    first = call(lane, path)
    assert first[0] == 200
    assert inner.calls == 1
    json.loads(first[2])  # a JSON document
    for _ in range(3):
        again = call(lane, path)
        assert again[0] == 200
        assert again[2] == first[2]
        assert without_id(again[1]) == without_id(first[1])
        assert again[1]["X-Request-ID"] != first[1]["X-Request-ID"]
    assert inner.calls == 1
    assert without_id(call(WSGIHandler(), path)[1]) == without_id(first[1])
    assert {"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"} <= set(first[1])


def test_each_site_address_has_its_own_document() -> None:
    """Discovery names absolute URLs built from the Host: a document kept for one address
    is never served for another."""
    inner = Counting()
    lane = MachineLane(inner)
    path = "/.well-known/openid-configuration"
    one = call(lane, path, host="testserver")
    other = call(lane, path, host="localhost")
    assert inner.calls == 2
    assert json.loads(one[2])["issuer"].startswith("http://testserver")
    assert json.loads(other[2])["issuer"].startswith("http://localhost")
    assert call(lane, path, host="localhost")[2] == other[2]
    assert inner.calls == 2


def test_a_refused_host_is_refused_every_time() -> None:
    """Django's host validation answers a host outside ALLOWED_HOSTS; the lane keeps only
    200s, so such a host never gets a document."""
    inner = Counting()
    lane = MachineLane(inner)
    for _ in range(2):
        status, _, _ = call(lane, "/oauth/jwks/", host="evil.example")
        assert status == 400
    assert inner.calls == 2


@pytest.mark.parametrize(
    ("method", "query"),
    [("POST", ""), ("HEAD", ""), ("GET", "x=1"), ("PUT", ""), ("DELETE", "")],
)
def test_everything_else_goes_to_django(method: str, query: str) -> None:
    inner = Counting()
    lane = MachineLane(inner)
    path = "/.well-known/openid-configuration"
    call(lane, path)  # kept
    expected = call(WSGIHandler(), path, method=method, query=query)
    got = call(lane, path, method=method, query=query)
    assert inner.calls == 2
    assert (got[0], got[2]) == (expected[0], expected[2])


def test_other_paths_go_to_django() -> None:
    inner = Counting()
    lane = MachineLane(inner)
    for path in ("/v1/nowhere", "/oauth/jwks", "/.well-known/other"):
        call(lane, path)
        call(lane, path)
    assert inner.calls == 6


def test_an_incoming_request_id_is_kept_and_a_bad_one_replaced() -> None:
    lane = MachineLane(Counting())
    call(lane, "/oauth/jwks/")
    assert call(lane, "/oauth/jwks/", headers={"X-Request-ID": "abcdefgh-1234"})[1][
        "X-Request-ID"
    ] == ("abcdefgh-1234")
    replaced = call(lane, "/oauth/jwks/", headers={"X-Request-ID": "bad id\x00"})[1]
    assert replaced["X-Request-ID"] != "bad id\x00"
    assert len(replaced["X-Request-ID"]) == 32


def test_a_lane_answer_is_logged_and_measured(caplog: pytest.LogCaptureFixture) -> None:
    """Every request has its log line (URL pattern, status, no path or address) and its
    latency sample, whoever answers it."""
    lane = MachineLane(Counting())
    call(lane, "/oauth/jwks/")

    def samples() -> float:
        total = 0.0
        for metric in metrics.REQUEST_SECONDS.collect():
            for sample in metric.samples:
                if sample.name.endswith("_count") and sample.labels["endpoint"] == "/oauth/jwks/":
                    total += sample.value
        return total

    before = samples()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="consentry.request"):
        call(lane, "/oauth/jwks/", headers={"X-Request-ID": "lane-log-check"})
    assert samples() == before + 1
    [line] = [r for r in caplog.records if r.name == "consentry.request"]
    assert (line.endpoint, line.status, line.method) == ("/oauth/jwks/", 200, "GET")  # type: ignore[attr-defined]


def test_served_application_is_behind_the_lane() -> None:
    from consentry import wsgi

    assert isinstance(wsgi.application, MachineLane)


def test_headers_django_ignores_do_not_split_the_kept_documents() -> None:
    """Without a trusted proxy header configured, Django builds the same document whatever
    X-Forwarded-Proto or X-Forwarded-Host say; so does the lane, from one kept copy."""
    inner = Counting()
    lane = MachineLane(inner)
    for n in range(5):
        call(
            lane,
            "/oauth/jwks/",
            headers={"X-Forwarded-Proto": f"junk{n}", "X-Forwarded-Host": f"h{n}.example"},
        )
    assert inner.calls == 1
    assert len(lane.kept) == 1
