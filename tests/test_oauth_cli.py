"""`consentry apps create|list` for staff, until the developer console exists."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth.hashers import check_password
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from consentry.cli import translate
from consentry.oauth.models import Application
from tests.oauth_flow import cheap_argon2, obtain_token  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*translate(list(args)), stdout=out)
    return out.getvalue()


def test_apps_create_prints_the_secret_once_and_stores_it_hashed(make_person):
    out = run(
        "apps", "create", "--name", "Calendar",
        "--redirect-uri", "https://app.example.test/callback",
        "--permissions", "user_birthday",
        "--purpose", "user_birthday=Puts birthdays in your calendar",
        "--live", "--json",
    )  # fmt: skip
    data = json.loads(out)
    app = Application.objects.get(client_id=data["client_id"])
    assert app.status == "live"
    assert app.approved_permissions == ["user_birthday"]
    assert app.purposes == {"user_birthday": "Puts birthdays in your calendar"}
    assert app.client_secret != data["client_secret"]
    assert check_password(data["client_secret"], app.client_secret)
    assert app.client_secret.startswith("client_hmac_sha256$")  # machine secret: fast hash
    tokens = obtain_token(
        Client(),
        make_person(),
        app,
        ["openid", "profile", "user_birthday"],
        client_secret=data["client_secret"],
    )
    assert "user_birthday" in tokens["scope"].split()
    listing = json.loads(run("apps", "list", "--json"))
    assert [row["client_id"] for row in listing] == [app.client_id]
    assert "client_secret" not in listing[0]


def test_loopback_http_redirect_is_allowed_for_local_apps():
    """RFC 8252 section 7.3: native and local apps receive the code on a loopback port."""
    run("apps", "create", "--name", "Local", "--redirect-uri", "http://127.0.0.1:5173/callback")
    assert Application.objects.get(name="Local").redirect_uris == "http://127.0.0.1:5173/callback"


def test_apps_create_defaults_to_development(make_person):
    out = run("apps", "create", "--name", "Dev", "--redirect-uri", "https://d.example.test/cb")
    assert "client_secret:" in out
    assert Application.objects.get(name="Dev").status == "development"


@pytest.mark.parametrize(
    "args",
    [
        ["--redirect-uri", "http://insecure.example.test/cb"],
        ["--redirect-uri", "https://a.example.test/cb#frag"],
        ["--redirect-uri", "https://user:pw@a.example.test/cb"],
        ["--redirect-uri", "http://127.0.0.1.example.test/cb"],
        ["--redirect-uri", "https://a.example.test/cb", "--permissions", "read_everything"],
        ["--redirect-uri", "https://a.example.test/cb", "--purpose", "no-equals-sign"],
    ],
)
def test_apps_create_refuses_bad_input(args):
    with pytest.raises(CommandError):
        run("apps", "create", "--name", "Bad", *args)
    assert not Application.objects.exists()
