"""Writes of the privacy center, one transaction each (STYLE.md: do_<verb>_<noun>)."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from consentry.grants.actions import do_revoke_consent
from consentry.grants.models import Consent
from consentry.people.models import Person
from consentry.privacy.models import DataExport, DeletionRequest

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed


def new_confirmation_code() -> str:
    """Twelve characters in three groups, e.g. K7QX-M2PA-9RTV (about 60 bits)."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def do_remove_app(
    person: Person, consent: Consent, *, ask_deletion: bool
) -> DeletionRequest | None:
    """Remove an app: revoke the whole grant (its tokens stop working on the very next
    call: grants.actions.do_revoke_consent, committed before the page answers) and, when
    asked, record a deletion request with a confirmation code. The app is told by signed
    callbacks after commit (developers.callbacks: deauthorize, and data deletion when
    asked), and the request's status follows the app's signed confirmation."""
    from consentry.developers.callbacks import do_notify_app_removed

    with transaction.atomic():
        do_revoke_consent(consent)
        callback_request = do_notify_app_removed(
            person, consent.application, delete_data=ask_deletion
        )
        if not ask_deletion:
            return None
        return DeletionRequest.objects.create(
            person=person,
            app_id=consent.application_id,
            app_name=consent.application.name,
            code=new_confirmation_code(),
            callback_request=callback_request,
        )


class ExportAlreadyRunning(Exception):
    """The person already has an export queued or running."""


def do_start_export(person: Person) -> DataExport:
    """Queue a "download my data" job; at most one unfinished per person. The work runs
    in a background task (privacy.tasks.build_export) enqueued after commit."""
    from consentry.privacy.tasks import build_export

    try:
        with transaction.atomic():
            export = DataExport.objects.create(person=person)
            transaction.on_commit(lambda: build_export.enqueue(export.pk))
    except IntegrityError as exc:  # the partial unique constraint: one unfinished job
        raise ExportAlreadyRunning from exc
    return export


def export_dir() -> Path:
    return Path(settings.VAR_DIR) / "exports"


def do_delete_account(person: Person) -> None:
    """Delete a person's account: every grant revoked (tokens die with them), then the
    profile, friendships, posts, notices and exports deleted with the person row. The
    ledger keeps its records: they name people by number only and must stay to keep the
    log verifiable (docs/ledger.md)."""
    files = [e.file_name for e in DataExport.objects.filter(person=person) if e.file_name]
    with transaction.atomic():
        for consent in Consent.objects.filter(person=person, revoked_at__isnull=True):
            do_revoke_consent(consent)
        Person.objects.filter(pk=person.pk).delete()

    def remove_files() -> None:
        for name in files:
            (export_dir() / name).unlink(missing_ok=True)

    transaction.on_commit(remove_files)


def do_change_email(person: Person, email: str) -> None:
    with transaction.atomic():
        Person.objects.filter(pk=person.pk).update(email=email)
    person.email = email


def do_set_language(person: Person, language: str) -> None:
    """Remember the person's language choice on their account (every device)."""
    if language != person.language:
        Person.objects.filter(pk=person.pk).update(language=language)
        person.language = language


def mark_export_progress(export_id: int, progress: int) -> None:
    DataExport.objects.filter(pk=export_id).update(progress=progress)


def do_finish_export(export_id: int, file_name: str, size: int) -> None:
    now = timezone.now()
    from consentry.privacy.models import EXPORT_LIFETIME

    DataExport.objects.filter(pk=export_id).update(
        status=DataExport.Status.READY,
        progress=100,
        file_name=file_name,
        size=size,
        finished_at=now,
        expires_at=now + EXPORT_LIFETIME,
    )
