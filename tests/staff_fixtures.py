"""Staff accounts with a real TOTP second factor, for tests of `/staff/` pages.

    person, key_hex = make_staff()
    code = totp_now(key_hex)          # what an authenticator app would show

`staff_client` is a Django test client signed in as staff that has passed the TOTP step
through the real `/accounts/two-factor/` form."""

from __future__ import annotations

import base64
import binascii
import itertools
from typing import Any

import pyotp
import pytest
from django.test import Client

from consentry.people.models import Person
from consentry.staff.actions import do_create_staff

PASSWORD = "staff horse battery staple"
_n = itertools.count(1)


def make_staff(email: str = "", password: str = PASSWORD) -> tuple[Person, str]:
    person, device = do_create_staff(email or f"staff{next(_n)}@example.test", password)
    return person, device.key


def totp_now(key_hex: str) -> str:
    """The current code for a django-otp TOTP device key (hex), as an app computes it."""
    secret = base64.b32encode(binascii.unhexlify(key_hex)).decode()
    return pyotp.TOTP(secret).now()


def sign_in_staff(client: Client, person: Person, key_hex: str, password: str = PASSWORD) -> None:
    response = client.post("/accounts/login/", {"username": person.email, "password": password})
    assert response.status_code == 302, response.content[:500]
    response = client.post("/accounts/two-factor/", {"code": totp_now(key_hex), "next": "/staff/"})
    assert response.status_code == 302, response
    assert response["Location"] == "/staff/"


@pytest.fixture
def staff_client(db: None) -> Any:
    client = Client()
    person, key = make_staff()
    sign_in_staff(client, person, key)
    client.staff = person  # type: ignore[attr-defined]
    return client
