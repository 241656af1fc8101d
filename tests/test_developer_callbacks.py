"""Signed callbacks to apps, checked by a small receiving server that verifies them with
the very code the developer docs show; retries with exponential backoff for 3 days;
replays refused; data deletion confirmed by the app's own signed call back."""

from __future__ import annotations

import html
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from consentry.developers import rules
from consentry.developers.actions import do_register_app, do_rotate_client_secret
from consentry.developers.callbacks import (
    CONFIRM_PATH,
    do_notify_app_removed,
    do_queue_deauthorize_callback,
    do_request_data_deletion,
)
from consentry.developers.examples import verify_signature as example
from consentry.developers.models import CallbackAttempt, CallbackDelivery, DataDeletionRequest
from consentry.oauth.pairwise import app_scoped_id
from tests import staff_fixtures
from tests.oauth_flow import REDIRECT_URI, cheap_argon2  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]
staff_client = staff_fixtures.staff_client


@dataclass
class Receiver:
    """What the app's callback endpoint saw; it answers `status` and checks signatures
    with the docs' example against `secret`."""

    secret: str = ""
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        ok = example.verify_consentry_signature(
            self.secret, headers.get("Consentry-Signature", ""), body
        )
        self.received.append({"headers": headers, "body": body, "verified": ok})
        return self.status if ok else 401


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.CALLBACKS_ALLOW_HTTP_LOOPBACK = True
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            code = state.handle(dict(self.headers.items()), body)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def app_for(receiver: Receiver):
    app, secret = do_register_app(
        owner=None,
        name="Calendar",
        redirect_uris=[REDIRECT_URI],
        deauthorize_callback_url=receiver.url,
        data_deletion_callback_url=receiver.url,
    )
    receiver.secret = secret
    return app, secret


def test_deauthorize_callback_is_signed_and_verified_by_the_docs_example(
    receiver, make_person, run_tasks
):
    app, _ = app_for(receiver)
    person = make_person()
    delivery = do_queue_deauthorize_callback(app, person.pk)
    assert delivery is not None
    assert run_tasks() >= 1
    assert len(receiver.received) == 1
    seen = receiver.received[0]
    assert seen["verified"]
    payload = json.loads(seen["body"])
    assert payload["type"] == "deauthorize"
    assert payload["user_id"] == app_scoped_id(app.pk, person.pk)
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert delivery.attempt_log.get().status_code == 200


def test_failed_deliveries_back_off_exponentially_and_give_up_after_3_days(receiver, run_tasks):
    app, _ = app_for(receiver)
    receiver.status = 503
    start = timezone.now()
    with freeze_time(start) as clock:
        delivery = do_queue_deauthorize_callback(app, 1)
        assert delivery is not None
        run_tasks()  # the first attempt, right after commit
        for _ in range(40):  # let the sweep retry whenever a retry is due
            delivery.refresh_from_db()
            if delivery.status != "pending":
                break
            assert delivery.next_attempt_at is not None
            clock.move_to(delivery.next_attempt_at)
            from consentry.developers.lifecycle import deliver_due_callbacks

            deliver_due_callbacks(timezone.now())
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    times = list(
        CallbackAttempt.objects.filter(delivery=delivery)
        .order_by("attempted_at")
        .values_list("attempted_at", flat=True)
    )
    gaps = [(b - a).total_seconds() / 60 for a, b in itertools.pairwise(times)]
    assert gaps[:5] == [1, 2, 4, 8, 16]
    assert all(later == 2 * earlier for earlier, later in itertools.pairwise(gaps))
    assert times[-1] - times[0] <= timedelta(days=3)
    assert len(times) == len(receiver.received) == 13  # 0, 1, 3, 7 ... 4095 minutes
    assert all(r["verified"] for r in receiver.received)  # every retry freshly signed


def test_a_recovered_endpoint_gets_the_retry_and_the_log_shows_both(
    receiver, run_tasks, make_person, staff_client
):
    app, _ = app_for(receiver)
    receiver.status = 500
    with freeze_time(timezone.now()) as clock:
        delivery = do_queue_deauthorize_callback(app, 7)
        assert delivery is not None
        run_tasks()
        receiver.status = 204
        clock.tick(timedelta(minutes=1))
        from consentry.developers.tasks import ensure_lifecycle_scheduled

        ensure_lifecycle_scheduled()
        run_tasks()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert [a.status_code for a in delivery.attempt_log.order_by("pk")] == [500, 204]
    page = staff_client.get(f"/staff/reviews/{app.pk}/").content.decode()
    assert "500" in page
    assert "204" in page


def test_a_replayed_callback_is_refused_by_the_timestamp(receiver, run_tasks):
    app, _ = app_for(receiver)
    with freeze_time(timezone.now()) as clock:
        do_queue_deauthorize_callback(app, 3)
        run_tasks()
        captured = receiver.received[0]
        assert captured["verified"]
        clock.tick(timedelta(minutes=6))
        replay = receiver.handle(captured["headers"], captured["body"])
    assert replay == 401
    tampered = captured["body"].replace(b"deauthorize", b"deauthorizX")
    assert receiver.handle(captured["headers"], tampered) == 401


def test_data_deletion_request_is_followed_and_confirmed_by_a_signed_call_back(
    receiver, make_person, run_tasks
):
    app, secret = app_for(receiver)
    person = make_person()
    deletion = do_request_data_deletion(person, app)
    run_tasks()
    payload = json.loads(receiver.received[0]["body"])
    assert payload["type"] == "data_deletion"
    assert payload["confirmation_code"] == deletion.confirmation_code
    assert payload["status_url"].endswith(f"/developers/deletion/{deletion.confirmation_code}")
    assert payload["confirm_url"].endswith(CONFIRM_PATH)
    status_path = f"/developers/deletion/{deletion.confirmation_code}"
    assert b"not confirmed the deletion yet" in Client().get(status_path).content
    dutch = Client().get(status_path, HTTP_ACCEPT_LANGUAGE="nl").content.decode()
    assert "De app heeft nog niet bevestigd dat je gegevens zijn gewist." in dutch

    client = Client()
    code = deletion.confirmation_code
    headers, body = example.deletion_confirmation(app.client_id, "wrong secret", code)
    assert _post(client, headers, body).status_code == 401
    stale_at = timezone.now().timestamp() - 600
    headers, body = example.deletion_confirmation(app.client_id, secret, code, now=stale_at)
    refused = _post(client, headers, body)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_signature"
    assert DataDeletionRequest.objects.get(pk=deletion.pk).completed_at is None

    headers, body = example.deletion_confirmation(app.client_id, secret, code)
    accepted = _post(client, headers, body)
    assert accepted.status_code == 200
    completed = DataDeletionRequest.objects.get(pk=deletion.pk).completed_at
    assert completed is not None
    assert _post(client, headers, body).status_code == 200  # a repeat keeps the first time
    assert DataDeletionRequest.objects.get(pk=deletion.pk).completed_at == completed
    assert b"The app confirmed the deletion" in Client().get(status_path).content


def _post(client: Client, headers: dict[str, str], body: bytes) -> Any:
    extra = {
        "HTTP_CONSENTRY_CLIENT_ID": headers["Consentry-Client-Id"],
        "HTTP_CONSENTRY_SIGNATURE": headers["Consentry-Signature"],
    }
    return client.post(CONFIRM_PATH, body, content_type="application/json", **extra)


@pytest.mark.parametrize(
    "body", [b"", b"not json", b'{"confirmation_code": "nope"}', b"\x00\xff", b"[" * 5000]
)
def test_bad_confirmations_are_refused_without_a_500(receiver, body):
    app, secret = app_for(receiver)
    timestamp = int(timezone.now().timestamp())
    response = Client().post(
        CONFIRM_PATH,
        body,
        content_type="application/json",
        HTTP_CONSENTRY_CLIENT_ID=app.client_id,
        HTTP_CONSENTRY_SIGNATURE=rules.signature_header(secret, timestamp, body),
    )
    assert response.status_code == 401


def test_after_rotation_callbacks_are_signed_with_the_new_secret(receiver, run_tasks):
    app, old = app_for(receiver)
    new = do_rotate_client_secret(app, timedelta(hours=1))
    receiver.secret = new
    do_queue_deauthorize_callback(app, 5)
    run_tasks()
    assert receiver.received[-1]["verified"]
    assert not example.verify_consentry_signature(
        old,
        receiver.received[-1]["headers"]["Consentry-Signature"],
        receiver.received[-1]["body"],
    )
    assert CallbackDelivery.objects.get().status == "delivered"


def test_docs_show_the_tested_example_verbatim(client):
    page = client.get("/developers/docs")
    assert page.status_code == 200
    source = (
        __import__("pathlib").Path(example.__file__).read_text()  # the file the tests run
    )
    assert html.escape(source) in page.content.decode()
    timestamp = 1_700_000_000
    header = rules.signature_header("s3cret", timestamp, b"{}")
    assert example.verify_consentry_signature("s3cret", header, b"{}", now=timestamp + 299)
    assert not example.verify_consentry_signature("s3cret", header, b"{}", now=timestamp + 301)
    assert not example.verify_consentry_signature("other", header, b"{}", now=timestamp)
    assert not example.verify_consentry_signature("s3cret", "v1=abc", b"{}", now=timestamp)


def test_removing_an_app_sends_deauthorize_and_the_deletion_request(
    receiver, make_person, run_tasks
):
    app, _ = app_for(receiver)
    person = make_person()
    deletion = do_notify_app_removed(person, app, delete_data=True)
    assert deletion is not None
    run_tasks()
    kinds = [json.loads(r["body"])["type"] for r in receiver.received]
    assert sorted(kinds) == ["data_deletion", "deauthorize"]
    assert all(r["verified"] for r in receiver.received)
    assert do_notify_app_removed(person, app, delete_data=False) is None


def test_removing_an_app_in_the_privacy_center_tells_the_app_and_follows_its_confirmation(
    receiver, make_person, run_tasks
):
    """The person's "remove and ask the app to delete my data" sends the signed callbacks,
    and the privacy center's status page moves from requested to sent to confirmed."""
    from consentry.developers.models import AppProfile
    from consentry.developers.secrets import encrypt_secret
    from consentry.privacy.models import DeletionRequest
    from tests.oauth_flow import make_app, obtain_token

    app, secret = make_app(name="Calendar")
    AppProfile.objects.update_or_create(
        application=app,
        defaults={
            "deauthorize_callback_url": receiver.url,
            "data_deletion_callback_url": receiver.url,
            "signing_secret": encrypt_secret(secret),
        },
    )
    receiver.secret = secret
    person = make_person()
    client = Client()
    obtain_token(client, person, app, ["openid", "profile"])
    assert client.post(f"/privacy/apps/{app.pk}/remove", {"delete": "1"}).status_code == 302
    request = DeletionRequest.objects.get(person=person)
    assert request.callback_request is not None
    status_page = f"/privacy/deletions/{request.code}/"
    assert b"the app will be told" in client.get(status_page).content
    run_tasks()
    assert sorted(json.loads(r["body"])["type"] for r in receiver.received) == [
        "data_deletion",
        "deauthorize",
    ]
    assert all(r["verified"] for r in receiver.received)
    assert b"waiting for its confirmation" in client.get(status_page).content
    code = request.callback_request.confirmation_code
    headers, body = example.deletion_confirmation(app.client_id, secret, code)
    assert _post(Client(), headers, body).status_code == 200
    assert b"confirmed that it deleted" in client.get(status_page).content
