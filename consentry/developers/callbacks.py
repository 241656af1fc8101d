"""Signed callbacks to apps: deauthorize (a person removed the app) and data-deletion
requests, and the app's signed confirmation that it deleted the data.

Every request carries `Consentry-Signature: t=<unix seconds>,v1=<hex>`, an HMAC-SHA256
over "t.body" keyed with the app's client secret (developers/rules.py). The body is fixed
when the callback is queued; each attempt signs it afresh with the current time, so a
retry is never refused as stale while a captured request cannot be replayed later.
Failed deliveries are retried with exponential backoff for 3 days; every attempt is
logged (`CallbackAttempt`) and shown to the developer and staff.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from consentry.developers import rules
from consentry.developers.models import (
    AppProfile,
    CallbackAttempt,
    CallbackDelivery,
    CallbackKind,
    DataDeletionRequest,
    DeliveryStatus,
)
from consentry.developers.secrets import current_signing_secret, signing_secrets
from consentry.oauth.models import Application
from consentry.oauth.pairwise import app_scoped_id
from consentry.people.models import Person

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_SECONDS = 10.0
# While one worker is sending, others leave the delivery alone for this long.
DELIVERY_LEASE = timedelta(minutes=2)
CONFIRM_PATH = "/developers/callbacks/data-deletion-complete"


def status_url(confirmation_code: str) -> str:
    return f"{settings.PUBLIC_URL.rstrip('/')}/developers/deletion/{confirmation_code}"


def _enqueue_delivery(delivery_id: int) -> None:
    from consentry.developers.tasks import deliver_callback_task

    deliver_callback_task.enqueue(delivery_id)


def _queue(
    application: Application, kind: str, url: str, payload: dict[str, object]
) -> CallbackDelivery:
    """Create the delivery row (inside the caller's transaction) and send it after
    commit."""
    delivery = CallbackDelivery.objects.create(
        application=application,
        kind=kind,
        url=url,
        body=json.dumps(payload, separators=(",", ":"), sort_keys=True),
        next_attempt_at=timezone.now(),
    )
    transaction.on_commit(lambda: _enqueue_delivery(delivery.pk))
    return delivery


def do_queue_deauthorize_callback(
    application: Application, person_id: int
) -> CallbackDelivery | None:
    """Tell the app that a person removed it (if it registered a deauthorize URL).
    Call it where the person's removal of the app is recorded."""
    profile = AppProfile.objects.filter(application=application).first()
    if profile is None or not profile.deauthorize_callback_url:
        return None
    payload: dict[str, object] = {
        "type": "deauthorize",
        "user_id": app_scoped_id(application.pk, person_id),
        "issued_at": int(timezone.now().timestamp()),
    }
    with transaction.atomic():
        return _queue(
            application, CallbackKind.DEAUTHORIZE, profile.deauthorize_callback_url, payload
        )


def do_request_data_deletion(person: Person, application: Application) -> DataDeletionRequest:
    """Record that `person` asks `application` to delete their data, with a confirmation
    code and a status URL the person can follow, and send the app the signed
    data-deletion callback (if it registered a URL; the request stands either way and is
    shown to staff as unconfirmed)."""
    code = secrets.token_urlsafe(18)
    profile = AppProfile.objects.filter(application=application).first()
    scoped = app_scoped_id(application.pk, person.pk)
    with transaction.atomic():
        request = DataDeletionRequest.objects.create(
            application=application,
            person=person,
            app_scoped_id=scoped,
            confirmation_code=code,
        )
        if profile is not None and profile.data_deletion_callback_url:
            payload: dict[str, object] = {
                "type": "data_deletion",
                "user_id": scoped,
                "confirmation_code": code,
                "status_url": status_url(code),
                "confirm_url": settings.PUBLIC_URL.rstrip("/") + CONFIRM_PATH,
                "issued_at": int(timezone.now().timestamp()),
            }
            request.delivery = _queue(
                application, CallbackKind.DATA_DELETION, profile.data_deletion_callback_url, payload
            )
            request.save(update_fields=["delivery"])
    return request


def do_notify_app_removed(
    person: Person, application: Application, *, delete_data: bool
) -> DataDeletionRequest | None:
    """The one call for "a person removed this app" (the privacy center makes it after
    revoking the consent): the deauthorize callback and, when the person asked for it, a
    data-deletion request. Returns the deletion request, if any."""
    with transaction.atomic():
        do_queue_deauthorize_callback(application, person.pk)
        return do_request_data_deletion(person, application) if delete_data else None


def deliver(delivery_id: int, now: datetime | None = None) -> str:
    """Try one delivery now, if it is due and no other worker holds it; record the
    attempt and schedule the next one. Returns the delivery's status afterwards."""
    now = now or timezone.now()
    claimed = CallbackDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + DELIVERY_LEASE)
    delivery = CallbackDelivery.objects.select_related("application").get(pk=delivery_id)
    if not claimed:
        return delivery.status
    secret = current_signing_secret(delivery.application)
    status_code: int | None = None
    error = ""
    if secret is None:
        error = "the app has no signing secret on record"
    else:
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Consentry-Callbacks/1",
            "Consentry-Delivery": str(delivery.pk),
            rules.SIGNATURE_HEADER: rules.signature_header(secret, int(now.timestamp()), body),
        }
        try:
            response = httpx.post(
                delivery.url,
                content=body,
                headers=headers,
                timeout=DELIVERY_TIMEOUT_SECONDS,
                follow_redirects=False,
            )
            status_code = response.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
    return do_record_callback_attempt(delivery, status_code, error, now)


def do_record_callback_attempt(
    delivery: CallbackDelivery, status_code: int | None, error: str, now: datetime
) -> str:
    """Log one attempt; a 2xx answer delivers, anything else schedules the next try with
    exponential backoff, and after 3 days the delivery is given up."""
    with transaction.atomic():
        CallbackAttempt.objects.create(
            delivery=delivery, attempted_at=now, status_code=status_code, error=error[:300]
        )
        delivery.attempts += 1
        delivery.first_attempt_at = delivery.first_attempt_at or now
        if status_code is not None and 200 <= status_code < 300:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = rules.next_attempt_at(
                delivery.first_attempt_at, delivery.attempts, now
            )
            if delivery.next_attempt_at is None:
                delivery.status = DeliveryStatus.FAILED
        delivery.save(
            update_fields=[
                "attempts",
                "first_attempt_at",
                "status",
                "delivered_at",
                "next_attempt_at",
            ]
        )
    if status_code is None or not 200 <= status_code < 300:
        log.info(
            "callback %s to app %s failed (%s)",
            delivery.pk,
            delivery.application_id,
            status_code or error,
        )
    return delivery.status


def due_deliveries(now: datetime) -> list[int]:
    return list(
        CallbackDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now
        ).values_list("pk", flat=True)
    )


class ConfirmationError(ValueError):
    """The app's confirmation is not signed right, stale, or names no request of it."""


def do_confirm_data_deletion(
    client_id: str, signature: str, body: bytes, now: datetime | None = None
) -> DataDeletionRequest:
    """The app says it deleted the data of a deletion request: a POST of
    `{"confirmation_code": ...}` signed like our callbacks, with its client secret (or a
    rotated-out one in its grace period). Stale or wrongly signed calls are refused; a
    repeated confirmation keeps the first time. Raises ConfirmationError."""
    now = now or timezone.now()
    application = Application.objects.filter(client_id=client_id[:200]).first()
    if application is None:
        raise ConfirmationError("unknown client")
    try:
        rules.verify_signature(
            signing_secrets(application, now), signature, body, int(now.timestamp())
        )
    except rules.SignatureError as error:
        raise ConfirmationError(str(error)) from None
    try:
        data = json.loads(body)
        code = str(data["confirmation_code"])[:64]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ConfirmationError("the body must be JSON with a confirmation_code") from None
    with transaction.atomic():
        request = (
            DataDeletionRequest.objects.select_for_update()
            .filter(application=application, confirmation_code=code)
            .first()
        )
        if request is None:
            raise ConfirmationError("no such deletion request for this app")
        if request.completed_at is None:
            request.completed_at = now
            request.save(update_fields=["completed_at"])
    return request
