"""Staff accounts and the audit trail."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from consentry.people.models import Person
from consentry.staff.models import StaffAuditEvent


def do_record_staff_action(
    staff: Person, action: str, target: str, details: dict[str, Any] | None = None
) -> StaffAuditEvent:
    """Append one event to the staff audit trail (in the caller's transaction, so an
    action and its record commit together)."""
    return StaffAuditEvent.objects.create(
        staff=staff, action=action, target=target, details=details or {}
    )


def do_create_staff(
    email: str, password: str | None, *, name: str = ""
) -> tuple[Person, TOTPDevice]:
    """Make `email` a staff account (creating the person when new) with a fresh, confirmed
    TOTP device replacing any earlier one. Returns the person and the device, whose
    `config_url` is the otpauth:// provisioning URI for an authenticator app."""
    with transaction.atomic():
        person = Person.objects.filter(email__iexact=email).first()
        if person is None:
            person = Person.objects.create_user(
                email=email, password=password, name=name or email.split("@")[0]
            )
        elif password:
            person.set_password(password)
        person.is_staff = True
        person.save()
        TOTPDevice.objects.filter(user=person).delete()
        device = TOTPDevice.objects.create(user=person, name="staff", confirmed=True)
    return person, device
