"""The privacy center through HTTP (Django's test client), checked against the database
and the ledger. Browser, accessibility and Dutch checks are in test_privacy_browser.py."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from consentry.grants.models import ClosedRoute, Consent
from consentry.ledger import signing
from consentry.ledger.api import catch_up_index
from consentry.ledger.models import CallRecord, SubjectDisclosure
from consentry.ledger.proof_file import verify_proof_file
from consentry.people.fields import FIELD_BIT
from consentry.people.models import Person
from consentry.privacy.models import DataExport, DeletionRequest
from tests.graph_fixtures import direct_app, get
from tests.oauth_flow import cheap_argon2  # noqa: F401
from tests.privacy_fixtures import PASSWORD, World, world_fixture  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cheap_argon2")]


def _about(person_id: int) -> list[int]:
    catch_up_index()
    return sorted(
        SubjectDisclosure.objects.filter(subject_id=person_id).values_list("entry_index", flat=True)
    )


def test_sign_in_leads_to_the_privacy_center(world: World) -> None:
    response = Client().post(
        "/accounts/login/", {"username": "bob@example.test", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/privacy/"


def test_pages_need_sign_in(world: World) -> None:
    for path in ("/privacy/", "/privacy/apps/", "/privacy/activity/", "/privacy/export/"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_home_shows_apps_reads_and_friends(world: World) -> None:
    page = world.client_for(world.alice).get("/privacy/").content.decode()
    assert "Birthday Calendar" in page
    assert 'id="stat-reads">2<' in page  # one read through Bob, one through herself
    assert "Through Bob Jansen: 1 read" in page


def test_apps_page_lists_permissions_with_tabs(world: World) -> None:
    client = world.client_for(world.bob)
    page = client.get("/privacy/apps/").content.decode()
    assert "Birthday Calendar" in page
    assert "Your birthday" in page
    assert "Your friends who also use this app" in page
    assert "Birthday Calendar" not in client.get("/privacy/apps/?tab=removed").content.decode()


def test_untick_a_permission_stops_the_token_using_it_on_the_next_call(world: World) -> None:
    client = world.client_for(world.bob)
    response = client.post(f"/privacy/apps/{world.app.pk}/permissions/user_friends/revoke")
    assert response.status_code == 302
    api = get(Client(), "/v1/me/friends", world.bob_token, fields="name")
    assert api.status_code == 403
    assert get(Client(), "/v1/me", world.bob_token, fields="name").status_code == 200


def test_remove_app_makes_the_old_token_fail_on_its_next_call(world: World) -> None:
    client = world.client_for(world.bob)
    assert client.post(f"/privacy/apps/{world.app.pk}/remove").status_code == 302
    assert get(Client(), "/v1/me", world.bob_token).status_code == 401
    removed = client.get("/privacy/apps/?tab=removed").content.decode()
    assert "Birthday Calendar" in removed


def test_remove_and_ask_for_deletion_records_a_request_with_a_code(world: World) -> None:
    client = world.client_for(world.bob)
    response = client.post(f"/privacy/apps/{world.app.pk}/remove", {"delete": "1"})
    request = DeletionRequest.objects.get(person=world.bob)
    assert response["Location"] == f"/privacy/deletions/{request.code}/"
    assert request.status == "requested"
    assert request.app_id == world.app.pk
    page = client.get(response["Location"]).content.decode()
    assert request.code in page
    assert get(Client(), "/v1/me", world.bob_token).status_code == 401


def test_activity_names_the_friend_through_whom_an_app_read(world: World) -> None:
    page = world.client_for(world.alice).get("/privacy/activity/").content.decode()
    assert "Birthday Calendar read your app identifier, name and birthday on " in page
    assert "through your friend Bob Jansen" in page
    assert "through you" in page


def test_activity_filters_by_app_field_friend_and_date(world: World) -> None:
    client = world.client_for(world.alice)
    other = direct_app()

    def indexes(**params: object) -> list[int]:
        response = client.get("/privacy/activity/", params)
        assert response.status_code == 200
        return [r["index"] for r in response.context["reads"]]

    everything = indexes()
    assert len(everything) == 2
    assert indexes(app=world.app.pk) == everything
    assert indexes(app=other.pk) == []
    assert len(indexes(friend=world.bob.pk)) == 1
    assert len(indexes(friend=world.alice.pk)) == 1
    assert indexes(field="birthday") == everything
    assert indexes(field="hometown") == []
    assert indexes(since="2000-01-01") == everything
    assert indexes(until="2000-01-01") == []


def test_activity_pages_with_a_cursor(world: World) -> None:
    for _ in range(60):
        assert world.read_friends().status_code == 200
    client = world.client_for(world.alice)
    first = client.get("/privacy/activity/")
    seen = [r["index"] for r in first.context["reads"]]
    assert len(seen) == 50
    assert first.context["next_url"]
    second = client.get("/privacy/activity/" + first.context["next_url"])
    seen += [r["index"] for r in second.context["reads"]]
    assert second.context["next_url"] is None
    assert seen == sorted(_about(world.alice.pk), reverse=True)


@pytest.mark.parametrize(
    "params",
    [
        {"app": "x\x00"},
        "friend=%ED%A0%80",  # a lone surrogate, UTF-8 encoded
        {"since": "2026-02-31"},
        {"before": "9" * 40},
        {"field": "password"},
    ],
)
def test_bad_filter_input_is_a_400_with_the_error_in_place(world: World, params: object) -> None:
    client = world.client_for(world.alice)
    if isinstance(params, str):
        response = client.get("/privacy/activity/", QUERY_STRING=params)
    else:
        response = client.get("/privacy/activity/", params)
    assert response.status_code == 400
    assert "errorlist" in response.content.decode()


def test_proof_download_verifies_offline_and_a_tampered_one_fails(world: World, tmp_path) -> None:
    client = world.client_for(world.alice)
    index = _about(world.alice.pk)[0]
    response = client.get(f"/privacy/activity/{index}/proof.json")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    path = tmp_path / "proof.json"
    path.write_bytes(response.content)
    out = io.StringIO()
    call_command("ledger_verify_proof", str(path), stdout=out)
    assert out.getvalue().startswith("OK: entry")
    doc = json.loads(response.content)
    doc["about"]["fields"] = ["birthday", "hometown"]
    path.write_text(json.dumps(doc))
    with pytest.raises(CommandError, match="does not release those fields"):
        call_command("ledger_verify_proof", str(path))
    doc = json.loads(response.content)
    doc["entry"]["app"] += 1
    assert not verify_proof_file(json.dumps(doc).encode(), signing.public_key_pem()).ok


def test_closing_a_route_omits_the_friend_from_the_next_read(world: World) -> None:
    client = world.client_for(world.alice)
    assert "Alice de Vries" in world.read_friends().content.decode()
    assert client.post(f"/privacy/friends/{world.bob.pk}/route").status_code == 302
    assert ClosedRoute.objects.filter(person=world.alice, through=world.bob).exists()
    body = world.read_friends().json()
    assert body["data"] == []
    assert body["meta"]["withheld_subjects"] == 2
    client.post(f"/privacy/friends/{world.bob.pk}/route", {"route": "open"})
    assert "Alice de Vries" in world.read_friends().content.decode()


def test_sharing_settings_change_audience_and_opt_in(world: World) -> None:
    client = world.client_for(world.alice)
    data = {f"audience_{f}": world.alice.audience(f).value for f in FIELD_BIT}
    data["audience_birthday"] = "only_me"
    data["share_hometown"] = "on"
    assert client.post("/privacy/sharing/", data).status_code == 302
    alice = Person.objects.get(pk=world.alice.pk)
    assert alice.audience_birthday == "only_me"
    assert alice.friend_share_mask == FIELD_BIT["hometown"]
    body = world.read_friends().json()
    assert all("birthday" not in entry for entry in body["data"])
    data["audience_name"] = "everyone\x00"
    response = client.post("/privacy/sharing/", data)
    assert response.status_code == 400
    assert "errorlist" in response.content.decode()


def test_export_holds_exactly_the_ledger_entries_about_the_person(
    world: World, run_tasks, tmp_path
) -> None:
    client = world.client_for(world.alice)
    assert client.post("/privacy/export/").status_code == 302
    run_tasks()
    export = DataExport.objects.get(person=world.alice)
    assert export.status == "ready"
    assert export.progress == 100
    assert "<progress" not in client.get("/privacy/export/").content.decode()
    response = client.get(f"/privacy/export/{export.pk}/download")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    entries = json.loads(archive.read("ledger/entries.json"))
    expected = sorted(
        i
        for i, blob in CallRecord.objects.values_list("index", "subjects")
        if world.alice.pk in _subject_ids(bytes(blob))
    )
    assert [e["index"] for e in entries] == expected == _about(world.alice.pk)
    for entry in entries:
        path = tmp_path / f"{entry['index']}.json"
        path.write_bytes(archive.read(entry["proof"]))
        call_command("ledger_verify_proof", str(path), stdout=io.StringIO())
    profile = json.loads(archive.read("profile.json"))
    assert profile["fields"]["name"] == "Alice de Vries"
    assert json.loads(archive.read("friends.json")) == [{"name": "Bob Jansen"}]


def _subject_ids(blob: bytes) -> set[int]:
    from consentry.ledger.records import unpack_subjects

    return set(unpack_subjects(blob).ids.tolist())


def test_only_one_export_at_a_time(world: World) -> None:
    client = world.client_for(world.alice)
    DataExport.objects.create(person=world.alice)  # queued, not yet run
    response = client.post("/privacy/export/", follow=True)
    assert "already being prepared" in response.content.decode()
    assert DataExport.objects.filter(person=world.alice).count() == 1


def test_account_changes_email_and_password(world: World) -> None:
    client = world.client_for(world.alice)
    response = client.post(
        "/privacy/account/",
        {"action": "email", "email": "Alice2@Example.test", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert Person.objects.get(pk=world.alice.pk).email == "alice2@example.test"
    response = client.post(
        "/privacy/account/",
        {"action": "email", "email": "bob@example.test", "password": PASSWORD},
    )
    assert response.status_code == 400
    response = client.post(
        "/privacy/account/",
        {
            "action": "password",
            "old_password": PASSWORD,
            "new_password1": "a much longer new secret 42",
            "new_password2": "a much longer new secret 42",
        },
    )
    assert response.status_code == 302
    assert Person.objects.get(pk=world.alice.pk).check_password("a much longer new secret 42")


def test_delete_account_revokes_grants_and_keeps_the_ledger(world: World) -> None:
    client = world.client_for(world.alice)
    ledger_before = CallRecord.objects.count()
    wrong = client.post(
        "/privacy/account/", {"action": "delete", "password": "nope", "confirm": "on"}
    )
    assert wrong.status_code == 400
    response = client.post(
        "/privacy/account/", {"action": "delete", "password": PASSWORD, "confirm": "on"}
    )
    assert response.status_code == 200
    assert not Person.objects.filter(pk=world.alice.pk).exists()
    assert not Consent.objects.filter(person_id=world.alice.pk).exists()
    assert get(Client(), "/v1/me", world.alice_token).status_code == 401
    assert CallRecord.objects.count() == ledger_before
    assert client.get("/privacy/").status_code == 302  # signed out


def test_transparency_card_is_public_and_counts_from_the_ledger(world: World) -> None:
    page = Client().get(f"/apps/{world.app.pk}")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Birthday Calendar" in text
    assert 'id="card-users">2<' in text
    assert 'id="card-reached">1<' in text  # only Alice: Bob was never a subject
    assert Client().get("/apps/999999").status_code == 404
    assert Client().get(f"/apps/{direct_app(status='development').pk}").status_code == 404


# --- No person reaches another person's things: 404, one test per URL -----------------


@pytest.fixture
def bobs_things(world: World, run_tasks) -> dict[str, object]:
    """Bob's deletion request, export and a ledger entry about Bob alone."""
    assert get(Client(), "/v1/me", world.bob_token, fields="name").status_code == 200
    bob = world.client_for(world.bob)
    bob.post(f"/privacy/apps/{world.app.pk}/remove", {"delete": "1"})
    bob.post("/privacy/export/")
    run_tasks()
    (entry,) = set(_about(world.bob.pk)) - set(_about(world.alice.pk))
    return {
        "code": DeletionRequest.objects.get(person=world.bob).code,
        "export": DataExport.objects.get(person=world.bob, status="ready").pk,
        "entry": entry,
    }


def test_another_persons_deletion_request_is_404(world: World, bobs_things: dict) -> None:
    client = world.client_for(world.alice)
    assert client.get(f"/privacy/deletions/{bobs_things['code']}/").status_code == 404


def test_another_persons_export_is_404(world: World, bobs_things: dict) -> None:
    client = world.client_for(world.alice)
    assert client.get(f"/privacy/export/{bobs_things['export']}/download").status_code == 404


def test_a_proof_of_an_entry_not_about_me_is_404(world: World, bobs_things: dict) -> None:
    client = world.client_for(world.alice)
    assert client.get(f"/privacy/activity/{bobs_things['entry']}/proof.json").status_code == 404


def test_another_persons_notice_is_404(world: World) -> None:
    from consentry.notices.models import Notice

    notice = Notice.objects.create(person=world.bob, kind="test", title="For Bob", body="")
    client = world.client_for(world.alice)
    assert client.post(f"/privacy/notices/{notice.pk}/read").status_code == 404
    assert "For Bob" not in client.get("/privacy/notices/").content.decode()


def test_closing_the_route_of_someone_not_my_friend_is_404(world: World) -> None:
    client = world.client_for(world.alice)
    assert client.post(f"/privacy/friends/{world.carol.pk}/route").status_code == 404


def test_removing_an_app_someone_else_granted_is_404(world: World) -> None:
    client = world.client_for(world.carol)
    assert client.post(f"/privacy/apps/{world.app.pk}/remove").status_code == 404
    path = f"/privacy/apps/{world.app.pk}/permissions/user_birthday/revoke"
    assert client.post(path).status_code == 404
    assert Consent.objects.filter(application=world.app, revoked_at__isnull=True).count() == 2


def test_another_persons_history_and_settings_are_not_reachable(world: World) -> None:
    """The activity, sharing and account pages take no person in their URL: a person id
    in the query is ignored, and Carol sees only her own (empty) history."""
    client = world.client_for(world.carol)
    page = client.get("/privacy/activity/", {"person": world.alice.pk}).content.decode()
    assert "Alice de Vries" not in page
    assert "through your friend" not in page


def test_language_choice_is_remembered_on_the_account(world: World) -> None:
    client = world.client_for(world.alice)
    response = client.post("/accounts/i18n/setlang/", {"language": "nl", "next": "/privacy/"})
    assert response.status_code == 302
    client.get("/privacy/")
    assert Person.objects.get(pk=world.alice.pk).language == "nl"
    fresh = world.client_for(Person.objects.get(pk=world.alice.pk))  # another device
    page = fresh.get("/privacy/").content.decode()
    assert "Je privacy" in page
    assert '<html lang="nl">' in page
    assert fresh.cookies["django_language"].value == "nl"


@pytest.mark.parametrize(
    "path",
    [
        "/privacy/",
        "/privacy/apps/",
        "/privacy/activity/",
        "/privacy/friends/",
        "/privacy/sharing/",
        "/privacy/export/",
        "/privacy/notices/",
        "/privacy/account/",
    ],
)
def test_every_page_speaks_dutch(world: World, path: str) -> None:
    client = world.client_for(world.alice)
    client.cookies["django_language"] = "nl"
    page = client.get(path).content.decode()
    assert '<html lang="nl">' in page
    assert "Privacycentrum" in page
    assert "Mijn gegevens downloaden" in page


def test_a_person_who_owns_apps_cannot_delete_the_account_yet(world: World) -> None:
    world.app.user = world.alice
    world.app.save(update_fields=["user"])
    client = world.client_for(world.alice)
    response = client.post(
        "/privacy/account/", {"action": "delete", "password": PASSWORD, "confirm": "on"}
    )
    assert response.status_code == 400
    assert "You still own apps" in response.content.decode()
    assert Person.objects.filter(pk=world.alice.pk).exists()


def test_index_at_finds_the_first_entry_at_or_after_a_moment(world: World) -> None:
    from datetime import timedelta

    from consentry.privacy.history import index_at

    for _ in range(40):
        world.read_friends()
    times = list(CallRecord.objects.order_by("index").values_list("created_at", flat=True))
    probes = [times[0] - timedelta(days=1), times[-1] + timedelta(days=1)]
    probes += [t + d for t in times[::7] for d in (timedelta(0), timedelta(microseconds=1))]
    for moment in probes:
        expected = next((i for i, t in enumerate(times) if t >= moment), len(times))
        for fanout in (2, 3, 32):
            assert index_at(moment, fanout) == expected


def test_friend_filter_pages_through_many_entries(world: World) -> None:
    for _ in range(70):
        assert world.read_friends().status_code == 200
    client = world.client_for(world.alice)
    first = client.get("/privacy/activity/", {"friend": world.bob.pk})
    assert len(first.context["reads"]) == 50
    second = client.get("/privacy/activity/" + first.context["next_url"])
    seen = [r["index"] for r in first.context["reads"] + second.context["reads"]]
    through_bob = [
        i
        for i in _about(world.alice.pk)
        if CallRecord.objects.get(index=i).actor_id == world.bob.pk
    ]
    assert seen == sorted(through_bob, reverse=True)


def test_sharing_page_names_the_apps_that_got_data_through_friends(world: World) -> None:
    page = world.client_for(world.alice).get("/privacy/sharing/").content.decode()
    assert "Birthday Calendar: 1 read" in page  # Bob's read; her own read is not counted
    page = world.client_for(world.bob).get("/privacy/sharing/").content.decode()
    assert "None so far." in page
