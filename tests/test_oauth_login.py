"""Person sign-in: argon2 hashes, throttled guessing, CSRF, secure cookies."""

from __future__ import annotations

import pytest
from django.test import Client

from consentry.people.models import Person

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def test_passwords_are_stored_as_argon2(make_person):
    person = make_person(password=PASSWORD)
    assert Person.objects.get(pk=person.pk).password.startswith("argon2$argon2id$")


def test_sign_in_works_and_the_session_cookie_is_httponly(make_person):
    person = make_person(password=PASSWORD)
    client = Client()
    response = client.post("/accounts/login/", {"username": person.email, "password": PASSWORD})
    assert response.status_code == 302
    assert client.cookies["sessionid"]["httponly"]
    assert client.cookies["sessionid"]["samesite"] == "Lax"


def test_repeated_wrong_passwords_lock_the_account_from_that_address(make_person):
    person = make_person(password=PASSWORD)
    client = Client()
    for _ in range(5):
        client.post("/accounts/login/", {"username": person.email, "password": "wrong"})
    locked = client.post("/accounts/login/", {"username": person.email, "password": PASSWORD})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_login_form_requires_csrf(make_person):
    person = make_person(password=PASSWORD)
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": person.email, "password": PASSWORD})
    assert response.status_code == 403
