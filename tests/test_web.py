from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_home_page_says_what_consentry_is(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Consentry" in response.content
    assert b"consent" in response.content


@pytest.mark.django_db
def test_healthz_reports_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_dutch_home_page(client, db):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="nl")
    assert response.status_code == 200
    assert 'lang="nl"' in response.text
    assert "Waarheen" in response.text
    assert "Where to go" not in response.text
