"""Background work of the privacy center (Django's Tasks API)."""

from __future__ import annotations

from django.db import transaction
from django_tasks import task

from consentry.privacy.models import DataExport


@task()
def build_export(export_id: int) -> None:
    """Build one "download my data" ZIP, recording progress as it goes."""
    from consentry.privacy.actions import do_finish_export, export_dir, mark_export_progress
    from consentry.privacy.export import build_archive, new_file_name

    with transaction.atomic():
        export = (
            DataExport.objects.select_for_update()
            .select_related("person")
            .filter(pk=export_id, status=DataExport.Status.QUEUED)
            .first()
        )
        if export is None:
            return  # already taken, finished, or the person was deleted
        export.status = DataExport.Status.RUNNING
        export.save(update_fields=["status"])
    try:
        data = build_archive(export.person, lambda p: mark_export_progress(export_id, p))
        name = new_file_name()
        directory = export_dir()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    except Exception:
        DataExport.objects.filter(pk=export_id).update(status=DataExport.Status.FAILED)
        raise
    do_finish_export(export_id, name, len(data))
