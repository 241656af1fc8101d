"""Background delivery of notices by email (Django's email backend: console by default,
SMTP from CONSENTRY_EMAIL_URL)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone
from django_tasks import task

from consentry.notices.models import Notice

BATCH = 500


@task()
def email_notices(created_at: str, min_id: int) -> int:
    """Email every not-yet-emailed notice written at `created_at` (one sending run), in
    batches over one connection. Returns how many were sent."""
    when = dt.datetime.fromisoformat(created_at)
    sent = 0
    connection = get_connection()
    while True:
        rows = list(
            Notice.objects.filter(created_at=when, id__gte=min_id, emailed_at__isnull=True)
            .select_related("person")
            .order_by("id")[:BATCH]
        )
        if not rows:
            break
        messages = [
            EmailMessage(
                subject=n.title,
                body=n.body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[n.person.email],
                connection=connection,
            )
            for n in rows
            if n.person.is_active
        ]
        if messages:
            connection.send_messages(messages)
        Notice.objects.filter(id__in=[n.id for n in rows]).update(emailed_at=timezone.now())
        sent += len(messages)
    return sent
