"""`consentry apps create|list|review`: the operator's side of app registration. Requested
permissions that need review stay pending until `apps review` approves them."""

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
    assert app.approved_permissions == []
    assert data["pending_permissions"] == ["user_birthday"]
    assert app.purposes == {"user_birthday": "Puts birthdays in your calendar"}
    assert app.client_secret != data["client_secret"]
    assert check_password(data["client_secret"], app.client_secret)
    assert app.client_secret.startswith("client_hmac_sha256$")  # machine secret: fast hash
    person = make_person()
    pending = obtain_token(
        Client(), person, app, ["openid", "profile", "user_birthday"],
        client_secret=data["client_secret"],
    )  # fmt: skip
    assert "user_birthday" not in pending["scope"].split()

    assert "user_birthday: approved" in run(
        "apps", "review", app.client_id, "--approve", "user_birthday", "--reason", "calendar"
    )
    app.refresh_from_db()
    assert app.approved_permissions == ["user_birthday"]
    tokens = obtain_token(
        Client(), person, app, ["openid", "profile", "user_birthday"],
        client_secret=data["client_secret"],
    )  # fmt: skip
    assert "user_birthday" in tokens["scope"].split()
    listing = json.loads(run("apps", "list", "--json"))
    assert [row["client_id"] for row in listing] == [app.client_id]
    assert listing[0]["pending_permissions"] == []
    assert "client_secret" not in listing[0]


def test_apps_review_rejects_with_a_reason_the_developer_sees():
    out = run(
        "apps", "create", "--name", "Quiz", "--redirect-uri", "https://q.example.test/cb",
        "--permissions", "user_birthday", "user_posts", "--agreement-signed-by", "Ada Dev",
        "--live", "--json",
    )  # fmt: skip
    app = Application.objects.get(client_id=json.loads(out)["client_id"])
    with pytest.raises(CommandError, match="reason"):
        run("apps", "review", str(app.pk), "--reject", "user_posts")
    run("apps", "review", str(app.pk), "--reject", "user_posts", "--reason", "not needed")
    run("apps", "review", "Quiz", "--approve", "user_birthday", "--reason", "fine")
    app.refresh_from_db()
    assert app.approved_permissions == ["user_birthday"]
    rejected = app.declarations.get(permission="user_posts")
    assert (rejected.status, rejected.reason) == ("rejected", "not needed")
    with pytest.raises(CommandError, match="no single app"):
        run("apps", "review", "Nope", "--approve", "user_birthday")


def test_agreement_permissions_need_a_signer_on_the_command_line():
    with pytest.raises(CommandError, match="agreement"):
        run(
            "apps", "create", "--name", "Posts", "--redirect-uri", "https://p.example.test/cb",
            "--permissions", "user_posts",
        )  # fmt: skip


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
