"""The developer console: registering an app, its secret, roles, declarations with the
signed data-use agreement, development versus live mode, secret rotation with grace."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import check_password
from django.db import DatabaseError, transaction
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from consentry.developers.actions import do_decide_review
from consentry.developers.models import (
    AppRole,
    PermissionDeclaration,
    ReviewDecision,
    SignedAgreement,
)
from consentry.notices.models import Notice
from consentry.oauth.models import Application
from consentry.people.models import Person
from tests.oauth_flow import (
    REDIRECT_URI,
    authorize_url,
    basic_auth,
    cheap_argon2,  # noqa: F401
    obtain_token,
    pkce_pair,
    redirect_params,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def signed_in(person: Person) -> Client:
    client = Client()
    client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    return client


def register(
    client: Client, name: str = "Birthday Calendar", **extra: str
) -> tuple[Application, str]:
    """Accept the terms and register an app through the console; returns it and its secret."""
    assert client.post("/developers/", {"accept": "on"}).status_code == 302
    data = {
        "name": name,
        "description": "Your friends' birthdays in your calendar",
        "website": "https://cal.example.test",
        "privacy_policy_url": "https://cal.example.test/privacy",
        "redirect_uris": REDIRECT_URI,
        "deauthorize_callback_url": "https://cal.example.test/deauth",
        "data_deletion_callback_url": "https://cal.example.test/delete",
    }
    data.update(extra)
    response = client.post("/developers/apps/new", data)
    assert response.status_code == 200, response.content[:500]
    html = response.content.decode()
    secret = re.search(r'id="client-secret">([^<]+)<', html)
    assert secret is not None
    return Application.objects.get(name=name), secret.group(1)


def declare(client: Client, app: Application, **fields: str) -> object:
    return client.post(f"/developers/apps/{app.pk}/declarations", fields)


def test_a_person_becomes_a_developer_registers_an_app_and_sees_the_secret_once(make_person):
    dev = make_person(email="dev@example.test")
    client = signed_in(dev)
    assert b"Become a developer" in client.get("/developers/").content
    assert client.get("/developers/apps/new").status_code == 302  # terms first
    app, secret = register(client)
    assert app.status == "development"
    assert check_password(secret, app.client_secret)
    assert AppRole.objects.get(application=app, person=dev).role == "admin"
    assert dev in app.members.all()
    page = client.get(f"/developers/apps/{app.pk}/").content.decode()
    assert app.client_id in page
    assert secret not in page


def test_icon_upload_is_checked_by_its_bytes_and_served(make_person):
    client = signed_in(make_person())
    client.post("/developers/", {"accept": "on"})
    fake = client.post(
        "/developers/apps/new",
        {"name": "Fake", "redirect_uris": REDIRECT_URI, "icon": _upload(b"<svg onload=x>")},
    )
    assert fake.status_code == 200
    assert b"PNG or JPEG" in fake.content
    assert not Application.objects.filter(name="Fake").exists()
    ok = client.post(
        "/developers/apps/new",
        {"name": "Iconic", "redirect_uris": REDIRECT_URI, "icon": _upload(PNG)},
    )
    assert ok.status_code == 200
    app = Application.objects.get(name="Iconic")
    icon = Client().get(app.icon_url)
    assert icon["Content-Type"] == "image/png"
    assert icon.content == PNG


def _upload(data: bytes) -> object:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("icon.png", data, content_type="image/png")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redirect_uris", "http://insecure.example.test/cb"),
        ("redirect_uris", "https://a.example.test/cb#frag"),
        ("deauthorize_callback_url", "ftp://cal.example.test/x"),
        ("name", "nul\x00byte"),
        ("website", "https://" + "a" * 600 + ".test"),
    ],
)
def test_bad_registration_input_is_shown_in_place_and_nothing_is_created(make_person, field, value):
    client = signed_in(make_person())
    client.post("/developers/", {"accept": "on"})
    data = {"name": "Bad", "redirect_uris": REDIRECT_URI, field: value}
    response = client.post("/developers/apps/new", data)
    assert response.status_code == 200
    assert b"errorlist" in response.content
    assert not Application.objects.exists()


def test_app_pages_are_404_for_people_without_a_role(make_person):
    app, _ = register(signed_in(make_person()))
    stranger = signed_in(make_person())
    for path in ("", "declarations"):
        assert stranger.get(f"/developers/apps/{app.pk}/{path}").status_code == 404
    for path in ("secret", "mode", "roles", "recertify"):
        assert stranger.post(f"/developers/apps/{app.pk}/{path}").status_code == 404
    assert stranger.get("/developers/apps/999999/").status_code == 404


def test_invited_tester_accepts_and_may_use_the_app_in_development_a_stranger_may_not(
    make_person,
):
    dev = make_person()
    tester = make_person(email="tess@example.test")
    stranger = make_person()
    client = signed_in(dev)
    app, secret = register(client)
    assert (
        client.post(
            f"/developers/apps/{app.pk}/roles", {"email": "TESS@example.test", "role": "tester"}
        ).status_code
        == 302
    )
    invitation = app.invitations.get()
    assert Notice.objects.get(person=tester, kind="developers.invitation").data == {
        "application_id": app.pk,
        "invitation_id": invitation.pk,
    }
    # Only the invitee can accept: to anyone else it does not exist.
    assert (
        signed_in(stranger).post(f"/developers/invitations/{invitation.pk}/accept").status_code
        == 404
    )
    tester_client = signed_in(tester)
    assert b"Accept" in tester_client.get("/developers/").content
    assert tester_client.post(f"/developers/invitations/{invitation.pk}/accept").status_code == 302
    assert AppRole.objects.get(application=app, person=tester).role == "tester"
    # A tester sees the app but cannot rotate the secret.
    assert tester_client.get(f"/developers/apps/{app.pk}/").status_code == 200
    assert (
        tester_client.post(f"/developers/apps/{app.pk}/secret", {"grace_hours": 0}).status_code
        == 404
    )

    # Development mode: the tester gets any permission, review not needed yet.
    scopes = ["openid", "profile", "user_birthday"]
    tokens = obtain_token(Client(), tester, app, scopes, client_secret=secret)
    assert set(tokens["scope"].split()) == set(scopes)
    # A stranger cannot even see the consent screen: same answer as an unknown app.
    _verifier, challenge = pkce_pair()
    refused = signed_in(stranger).get(authorize_url(app, scopes, challenge))
    assert refused.status_code == 400


def test_declarations_sign_the_agreement_immutably_and_wait_for_review(make_person):
    dev = make_person(email="ada@example.test")
    client = signed_in(dev)
    app, _ = register(client)
    missing = declare(
        client,
        app,
        request_user_posts="on",
        purpose_user_posts="Show your posts",
        retention_user_posts="30",
    )
    assert missing.status_code == 400
    assert b"data-use agreement" in missing.content
    no_purpose = declare(client, app, request_user_birthday="on", retention_user_birthday="30")
    assert no_purpose.status_code == 400
    assert b"Say why" in no_purpose.content

    response = declare(
        client,
        app,
        request_user_birthday="on",
        purpose_user_birthday="Put your friends' birthdays in your calendar",
        retention_user_birthday="365",
        request_user_posts="on",
        purpose_user_posts="Show your posts on your calendar days",
        retention_user_posts="30",
        signer_name="Ada Developer",
        test_instructions="Sign in as the tester and open the calendar.",
    )
    assert response.status_code == 302
    statuses = dict(
        PermissionDeclaration.objects.filter(application=app).values_list("permission", "status")
    )
    assert statuses == {"user_birthday": "pending", "user_posts": "pending"}
    app.refresh_from_db()
    assert app.approved_permissions == []
    assert app.purposes["user_birthday"] == "Put your friends' birthdays in your calendar"
    signed = SignedAgreement.objects.get(application=app)
    assert signed.sha256 == hashlib.sha256(signed.text.encode()).hexdigest()
    assert "Signed by: Ada Developer" in signed.text
    assert app.client_id in signed.text
    assert signed.signer_email == "ada@example.test"
    assert app.agreement_signed_at == signed.signed_at
    assert app.review_requests.get().permissions == ["user_birthday", "user_posts"]

    # Immutable: the database refuses any change, whatever code tries.
    with pytest.raises(DatabaseError), transaction.atomic():
        SignedAgreement.objects.filter(pk=signed.pk).update(text="something else")
    with pytest.raises(TypeError):
        signed.delete()
    assert SignedAgreement.objects.get(pk=signed.pk).text == signed.text


def test_review_decisions_reach_the_developer_and_live_mode_offers_only_approved(make_person):
    dev, staff, person = make_person(), make_person(email="staff@example.test"), make_person()
    client = signed_in(dev)
    app, secret = register(client)
    declare(
        client,
        app,
        request_user_birthday="on",
        purpose_user_birthday="Birthdays in your calendar",
        retention_user_birthday="365",
        request_user_posts="on",
        purpose_user_posts="Posts",
        retention_user_posts="30",
        signer_name="Dev",
    )
    do_decide_review(app, None, approve=["user_birthday"], reason="Matches the calendar")
    do_decide_review(app, None, reject=["user_posts"], reason="A calendar needs no posts")
    assert client.post(f"/developers/apps/{app.pk}/mode", {"mode": "live"}).status_code == 302
    app.refresh_from_db()
    assert app.status == "live"
    assert app.approved_permissions == ["user_birthday"]
    page = client.get(f"/developers/apps/{app.pk}/").content.decode()
    assert "A calendar needs no posts" in page
    decisions = ReviewDecision.objects.filter(application=app).order_by("pk")
    assert [(d.permission, d.approved, d.staff_email) for d in decisions] == [
        ("user_birthday", True, "operator (CLI)"),
        ("user_posts", False, "operator (CLI)"),
    ]
    with pytest.raises(DatabaseError), transaction.atomic():
        ReviewDecision.objects.filter(pk=decisions[0].pk).update(approved=False)

    scopes = ["openid", "profile", "user_birthday", "user_posts"]
    visitor = signed_in(person)
    _verifier, challenge = pkce_pair()
    screen = visitor.get(authorize_url(app, scopes, challenge)).content.decode()
    assert 'data-permission="user_birthday"' in screen
    assert 'data-permission="user_posts"' not in screen
    tokens = obtain_token(Client(), person, app, scopes, client_secret=secret)
    assert set(tokens["scope"].split()) == {"openid", "profile", "user_birthday"}
    del staff


def test_going_live_needs_a_privacy_policy(make_person):
    client = signed_in(make_person())
    app, _ = register(client, privacy_policy_url="")
    response = client.post(f"/developers/apps/{app.pk}/mode", {"mode": "live"})
    assert response.status_code == 400
    assert b"privacy policy" in response.content
    app.refresh_from_db()
    assert app.status == "development"


def _token_status(app: Application, secret: str) -> int:
    response = Client().post(
        "/oauth/introspect/", {"token": "x"}, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    )
    return response.status_code


def test_rotated_secret_keeps_working_for_the_grace_period_only(make_person):
    client = signed_in(make_person())
    app, old = register(client)
    assert _token_status(app, old) == 200
    bad = client.post(f"/developers/apps/{app.pk}/secret", {"grace_hours": "25"})
    assert bad.status_code == 400
    assert b"errorlist" in bad.content
    start = timezone.now()
    with freeze_time(start) as clock:
        response = client.post(f"/developers/apps/{app.pk}/secret", {"grace_hours": "2"})
        new = re.search(r'id="client-secret">([^<]+)<', response.content.decode())
        assert new is not None
        new_secret = new.group(1)
        assert new_secret != old
        assert _token_status(app, new_secret) == 200
        assert _token_status(app, old) == 200  # within the grace period
        clock.tick(timedelta(hours=2, seconds=1))
        assert _token_status(app, old) == 401
        assert _token_status(app, new_secret) == 200
        # Without grace the old secret stops at once.
        again = client.post(f"/developers/apps/{app.pk}/secret", {"grace_hours": "0"})
        newest = re.search(r'id="client-secret">([^<]+)<', again.content.decode())
        assert newest is not None
        assert _token_status(app, new_secret) == 401
        assert _token_status(app, newest.group(1)) == 200


def test_an_app_keeps_at_least_one_admin(make_person):
    dev = make_person()
    client = signed_in(dev)
    app, _ = register(client)
    response = client.post(f"/developers/apps/{app.pk}/roles/{dev.pk}/remove")
    assert response.status_code == 400
    assert b"at least one admin" in response.content
    assert AppRole.objects.filter(application=app).count() == 1


def test_unknown_permission_scope_is_still_invalid_scope(make_person):
    client = signed_in(make_person())
    app, _ = register(client)
    _verifier, challenge = pkce_pair()
    response = client.get(authorize_url(app, ["openid", "read_everything"], challenge))
    assert redirect_params(response["Location"])["error"] == "invalid_scope"


def test_admin_edits_details_and_callback_urls_in_place(make_person):
    client = signed_in(make_person())
    app, _ = register(client)
    edit = f"/developers/apps/{app.pk}/edit"
    assert b"cal.example.test/deauth" in client.get(edit).content
    data = {
        "name": "Birthday Calendar 2",
        "redirect_uris": f"{REDIRECT_URI}\nhttps://app.example.test/other",
        "privacy_policy_url": "https://cal.example.test/privacy",
        "deauthorize_callback_url": "https://cal.example.test/gone",
        "data_deletion_callback_url": "https://cal.example.test/erase",
    }
    bad = client.post(edit, {**data, "data_deletion_callback_url": "http://cal.example.test/x"})
    assert bad.status_code == 400
    assert b"errorlist" in bad.content
    assert client.post(edit, data).status_code == 302
    app.refresh_from_db()
    assert app.name == "Birthday Calendar 2"
    assert app.redirect_uris.split() == [REDIRECT_URI, "https://app.example.test/other"]
    assert app.developer_profile.data_deletion_callback_url == "https://cal.example.test/erase"
    assert signed_in(make_person()).get(edit).status_code == 404
