"""Background work of incident response (Django's Tasks API).

`notify_incident(incident_id)`: after a ban, take the exact affected set from the ledger
(consentry.incidents.exposure) and give every affected person a notice (privacy-center
inbox and email, consentry.notices) in batches of `BATCH` with one bulk insert each,
recording progress on the Incident row after every batch so staff see it. Safe to run
again: it resumes after the people already notified (subjects in id order).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django_tasks import task

from consentry.incidents.exposure import exposures_for_app
from consentry.incidents.models import Incident
from consentry.incidents.notices import NOTICE_KIND, ban_notice
from consentry.ledger.api import ledger_size
from consentry.people.models import Person

BATCH = 5_000


@task()
def notify_incident(incident_id: int) -> int:
    """Notify everyone the banned app received data about; returns how many were
    notified by this run."""
    from consentry.notices.actions import NoticeDraft, do_send_notices

    incident = Incident.objects.get(pk=incident_id)
    if incident.status == Incident.Status.NOTIFIED:
        return 0
    size = incident.ledger_size if incident.ledger_size is not None else ledger_size()
    exposures = exposures_for_app(incident.app_id, upto=size)
    total = len(exposures)
    Incident.objects.filter(pk=incident_id).update(
        ledger_size=size,
        affected_total=total,
        people_per_field=exposures.people_per_field(),
        first_disclosure_at=exposures.first_at,
        last_disclosure_at=exposures.last_at,
        notices_started_at=incident.notices_started_at or timezone.now(),
    )
    done = 0
    start = incident.notified
    actor_names: dict[int, str] = {}
    while start < total:
        stop = min(start + BATCH, total)
        batch = exposures.for_slice(start, stop)
        people = dict(
            Person.objects.filter(pk__in=[pid for pid, _ in batch]).values_list("pk", "language")
        )
        actors = {e.first_through for _, ex in batch for e in ex} | {
            e.last_through for _, ex in batch for e in ex
        }
        missing = actors - actor_names.keys()
        if missing:
            actor_names.update(
                Person.objects.filter(pk__in=list(missing)).values_list("pk", "name")
            )
        drafts = []
        for person_id, exposed in batch:
            if person_id not in people:
                continue  # deleted since: nobody left to tell
            notice = ban_notice(
                person_id=person_id,
                language=people[person_id],
                incident_id=incident_id,
                app_id=incident.app_id,
                app_name=incident.app_name,
                banned_at=incident.banned_at,
                exposures=exposed,
                names=actor_names,
            )
            drafts.append(
                NoticeDraft(
                    person_id=notice.person_id,
                    kind=NOTICE_KIND,
                    title=notice.title,
                    body=notice.body,
                    data=notice.data,
                )
            )
        with transaction.atomic():
            do_send_notices(drafts)
            Incident.objects.filter(pk=incident_id).update(notified=stop)
        done += stop - start
        start = stop
    Incident.objects.filter(pk=incident_id).update(
        status=Incident.Status.NOTIFIED, notices_done_at=timezone.now()
    )
    return done
