"""Background tasks, notices and the staff second factor that the product builds on."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import DatabaseError, transaction
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from consentry.notices.actions import NoticeDraft, do_mark_notices_read, do_send_notices
from consentry.notices.models import Notice
from consentry.staff.actions import do_record_staff_action
from consentry.staff.models import AppendOnlyError, StaffAuditEvent
from tests.staff_fixtures import PASSWORD, make_staff, sign_in_staff, totp_now


def test_notices_are_stored_and_emailed_by_a_background_task(make_person, run_tasks):
    alice, bob = make_person(name="Alice"), make_person(name="Bob")
    drafts = [
        NoticeDraft(p.id, "app_banned", "Quiz was banned", f"Dear {p.name}", {"app": 1})
        for p in (alice, bob)
    ]
    assert do_send_notices(drafts) == 2
    assert Notice.objects.filter(person=alice, kind="app_banned").count() == 1
    assert mail.outbox == []  # nothing is sent inside the request
    assert run_tasks() == 1
    assert sorted(m.to[0] for m in mail.outbox) == sorted([alice.email, bob.email])
    assert not Notice.objects.filter(emailed_at__isnull=True).exists()
    assert do_mark_notices_read(alice.id) == 1
    assert Notice.objects.get(person=bob).read_at is None


def test_staff_pages_are_404_without_the_second_factor(db):
    person, key = make_staff()
    client = Client()
    assert client.get("/staff/").status_code == 404  # anonymous
    response = client.post("/accounts/login/", {"username": person.email, "password": PASSWORD})
    assert response["Location"].startswith("/accounts/two-factor/")
    assert client.get("/staff/").status_code == 404  # password alone is not enough
    wrong = client.post("/accounts/two-factor/", {"code": "000000"})
    assert wrong.status_code == 200
    assert b"not valid" in wrong.content
    assert client.get("/staff/").status_code == 404
    # django-otp throttles guesses (a growing delay after each failure); let it pass.
    TOTPDevice.objects.filter(user=person).update(throttling_failure_timestamp=None)
    ok = client.post("/accounts/two-factor/", {"code": totp_now(key), "next": "/staff/"})
    assert ok.status_code == 302
    assert client.get("/staff/").status_code == 200


def test_people_who_are_not_staff_get_404(make_person):
    person = make_person(password="correct horse battery staple")
    client = Client()
    client.force_login(person)
    assert client.get("/staff/").status_code == 404
    assert client.get("/accounts/two-factor/").status_code == 404


def test_second_factor_next_stays_on_this_site(db):
    person, key = make_staff()
    client = Client()
    client.post("/accounts/login/", {"username": person.email, "password": PASSWORD})
    response = client.post(
        "/accounts/two-factor/", {"code": totp_now(key), "next": "https://evil.example/"}
    )
    assert response["Location"] == "/staff/"


def test_staff_audit_trail_is_append_only(db):
    staff, _key = make_staff()
    event = do_record_staff_action(staff, "app.ban", "app:1", {"reason": "harvest"})
    event.details = {"reason": "nothing happened"}
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    # The database refuses it too, whatever code path writes.
    with pytest.raises(DatabaseError), transaction.atomic():
        StaffAuditEvent.objects.filter(pk=event.pk).update(action="app.unban")
    assert StaffAuditEvent.objects.get(pk=event.pk).action == "app.ban"


def test_staff_create_command_prints_a_provisioning_uri(db, capsys):
    from django.core.management import call_command

    call_command("staff_create", "ops@example.test", password="a long staff password")
    out = capsys.readouterr().out
    assert "otpauth://totp/" in out
    client = Client()
    from consentry.people.models import Person

    person = Person.objects.get(email="ops@example.test")
    assert person.is_staff
    sign_in_staff(
        client,
        person,
        TOTPDevice.objects.get(user=person).key,
        password="a long staff password",
    )
    assert client.get("/staff/").status_code == 200


def test_worker_command_runs_ready_tasks(make_person, run_tasks, capsys):
    from django.core.management import call_command

    person = make_person()
    do_send_notices([NoticeDraft(person.id, "hello", "Hello", "Body")])
    # Flush the on-commit queue into the task table without running anything yet.
    from django.db import connection

    for _s, callback, _r in list(connection.run_on_commit):
        callback()
    connection.run_on_commit.clear()
    call_command("worker", "--batch")
    assert "Ran 1 task(s)." in capsys.readouterr().out
    assert len(mail.outbox) == 1
