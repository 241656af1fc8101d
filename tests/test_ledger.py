"""The disclosure ledger on a real database (SQLite and PostgreSQL): append, read back,
proofs, signed tree heads, the derived index and `consentry ledger verify`."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, IntegrityError, connection, transaction

from consentry.cli import main as consentry_main
from consentry.grants.permissions import RELEASE_BIT, fields_to_mask
from consentry.ledger import api, merkle, records, signing
from consentry.ledger.models import (
    AppReach,
    CallRecord,
    LedgerHead,
    SignedTreeHead,
    SubjectDisclosure,
)
from consentry.people.models import Person
from tests.test_ledger_merkle import ref_mth

pytestmark = pytest.mark.django_db

NAME = RELEASE_BIT["name"]
BIRTHDAY = RELEASE_BIT["birthday"]
EMAIL = RELEASE_BIT["email"]


def record(app_id: int = 1, actor_id: int = 1, released: list[tuple[int, int]] | None = None,
           endpoint: str = "/v1/me", token_id: int | None = None) -> int:  # fmt: skip
    with transaction.atomic():
        return api.record_disclosure(
            app_id=app_id,
            actor_id=actor_id,
            endpoint=endpoint,
            released=[(actor_id, NAME)] if released is None else released,
            token_id=token_id,
        )


def fill(n: int) -> list[int]:
    return [
        record(
            app_id=1 + i % 3, actor_id=10 + i, released=[(10 + i, NAME), (500 + i % 7, BIRTHDAY)]
        )
        for i in range(n)
    ]


def raw_sql(sql: str, params: list[object]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def verify_fails_with() -> str:
    with pytest.raises(CommandError) as caught:
        call_command("ledger_verify")
    return str(caught.value)


# --- Append and read back ----------------------------------------------------------------------


def test_appended_call_reads_back_exactly() -> None:
    index = record(
        app_id=7,
        actor_id=42,
        endpoint="/v1/me/friends",
        token_id=99,
        released=[(43, NAME | BIRTHDAY), (42, NAME), (44, EMAIL), (43, EMAIL)],
    )
    entry = api.read_entry(index)
    assert (entry.index, entry.app_id, entry.actor_id, entry.endpoint, entry.token_id) == (
        0,
        7,
        42,
        "/v1/me/friends",
        99,
    )
    assert entry.released == ((42, NAME), (43, NAME | BIRTHDAY | EMAIL), (44, EMAIL))
    assert entry.recomputed_leaf_hash() == entry.leaf_hash
    assert entry.created_at.tzinfo is not None


def test_a_call_of_five_thousand_subjects_is_one_compact_row() -> None:
    released = [(i, NAME | BIRTHDAY) for i in range(5000, 0, -1)]
    index = record(released=released)
    row = CallRecord.objects.get(index=index)
    assert CallRecord.objects.count() == 1
    assert row.subject_count == 5000
    assert len(bytes(row.subjects)) == 50_000
    assert api.read_entry(index).released == tuple(sorted(released))


def test_leaf_indexes_are_dense_in_append_order() -> None:
    assert fill(12) == list(range(12))
    assert list(CallRecord.objects.order_by("index").values_list("index", flat=True)) == list(
        range(12)
    )
    assert api.ledger_size() == 12


def test_a_mask_of_nothing_is_refused_and_the_callers_writes_roll_back(
    make_person: Callable[..., Person],
) -> None:
    def respond() -> None:
        with transaction.atomic():
            make_person(email="leak@example.test")
            api.record_disclosure(app_id=1, actor_id=1, endpoint="/v1/me", released=[(1, 0)])

    with pytest.raises(ValueError, match="non-zero"):
        respond()
    assert not Person.objects.filter(email="leak@example.test").exists()


def test_if_the_ledger_write_fails_no_data_leaves(make_person: Callable[..., Person]) -> None:
    """A database error inside record_disclosure fails the caller's whole transaction."""
    record()
    # Occupy the slot the head will hand out next, so the ledger's INSERT fails.
    CallRecord.objects.create(
        index=1,
        created_at=api.read_entry(0).created_at,
        app_id=1,
        actor_id=1,
        endpoint="/v1/me",
        subject_count=0,
        subjects=b"",
        leaf_hash=bytes(32),
    )

    def respond() -> None:
        with transaction.atomic():
            make_person(email="leak@example.test")
            api.record_disclosure(app_id=1, actor_id=1, endpoint="/v1/me", released=[(1, NAME)])

    with pytest.raises(IntegrityError):
        respond()
    assert not Person.objects.filter(email="leak@example.test").exists()
    assert api.ledger_size() == 1


def test_ledger_outlives_the_person_it_speaks_about(make_person: Callable[..., Person]) -> None:
    person = make_person()
    person_id = person.pk
    index = record(actor_id=person_id, released=[(person_id, NAME)])
    person.delete()
    assert api.read_entry(index).released == ((person_id, NAME),)
    assert api.history_for_person(person_id)[0].index == index


# --- Merkle tree, proofs and signed tree heads -------------------------------------------------


def leaf_inputs() -> list[bytes]:
    return [
        records.leaf_input(
            index=r.index,
            created_at=r.created_at,
            app_id=r.app_id,
            actor_id=r.actor_id,
            token_id=r.token_id,
            endpoint=r.endpoint,
            subject_count=r.subject_count,
            subjects=bytes(r.subjects),
        )
        for r in CallRecord.objects.order_by("index")
    ]


def test_head_root_matches_a_recursive_rfc6962_tree_at_every_size() -> None:
    for n in range(1, 20):
        record(app_id=n, released=[(n, NAME)])
        assert api.latest_signed_tree_head().root_hash == ref_mth(leaf_inputs())


def test_inclusion_proofs_verify_for_every_entry_and_fail_when_tampered() -> None:
    fill(13)
    public = signing.public_key()
    for size in (1, 5, 8, 13):
        for index in range(size):
            proof = api.inclusion_proof(index, tree_size=size)
            assert proof.verify()
            assert signing.verify_tree_head(proof.sth, public)
            assert proof.leaf_hash == api.read_entry(index).recomputed_leaf_hash()
            if proof.audit_path:
                bad_path = (bytes(32), *proof.audit_path[1:])
                assert not api.verify_inclusion(
                    proof.leaf_hash, index, size, bad_path, proof.sth.root_hash
                )
            assert not api.verify_inclusion(
                merkle.leaf_hash(b"forged"), index, size, proof.audit_path, proof.sth.root_hash
            )


def test_default_inclusion_proof_is_against_the_latest_signed_tree_head() -> None:
    fill(6)
    proof = api.inclusion_proof(2)
    assert proof.tree_size == 6
    assert proof.sth == api.latest_signed_tree_head()
    assert proof.verify()


def test_consistency_proof_between_two_signed_tree_heads_verifies() -> None:
    fill(5)
    old = api.latest_signed_tree_head()
    fill(6)
    new = api.latest_signed_tree_head()
    proof = api.consistency_proof(old.tree_size, new.tree_size)
    assert merkle.verify_consistency(5, 11, old.root_hash, new.root_hash, proof)


def test_latest_signed_tree_head_signs_only_when_the_tree_grew() -> None:
    fill(3)
    first = api.latest_signed_tree_head()
    assert api.latest_signed_tree_head() == first
    assert SignedTreeHead.objects.count() == 1
    record()
    second = api.latest_signed_tree_head()
    assert (first.tree_size, second.tree_size) == (3, 4)
    assert signing.verify_tree_head(second, signing.public_key_pem())
    altered = signing.SignedTreeHead(5, second.timestamp_ms, second.root_hash, second.signature)
    assert not signing.verify_tree_head(altered, signing.public_key_pem())


def test_a_tree_head_is_signed_on_append_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTRY_LEDGER_STH_INTERVAL", "4")
    fill(9)
    assert list(
        SignedTreeHead.objects.order_by("tree_size").values_list("tree_size", flat=True)
    ) == [
        4,
        8,
    ]


# --- Person history and blast radius -----------------------------------------------------------


def test_history_is_newest_first_and_pages_by_entry_index() -> None:
    for i in range(7):
        record(app_id=100 + i, actor_id=i + 1, released=[(77, NAME if i % 2 else BIRTHDAY)])
        record(app_id=5, released=[(78, NAME)])  # someone else's data in between
    page = api.history_for_person(77, limit=3)
    assert [d.index for d in page] == [12, 10, 8]
    assert [d.app_id for d in page] == [106, 105, 104]
    assert page[0].fields == ["birthday"]
    assert page[1].fields == ["name"]
    assert page[1].actor_id == 6
    assert page[0].endpoint == "/v1/me"
    rest = api.history_for_person(77, limit=3, before=page[-1].index)
    assert [d.index for d in rest] == [6, 4, 2]
    assert [d.index for d in api.history_for_person(77, before=rest[-1].index)] == [0]
    assert api.history_for_person(12345) == []


def test_blast_radius_is_the_exact_union_of_fields_per_subject() -> None:
    record(app_id=9, released=[(1, NAME), (2, BIRTHDAY)])
    record(app_id=9, released=[(2, NAME), (3, EMAIL | NAME)])
    record(app_id=8, released=[(4, NAME)])
    record(app_id=9, released=[(1, fields_to_mask({"likes", "posts"}))])
    assert api.blast_radius(9) == {
        1: NAME | fields_to_mask({"likes", "posts"}),
        2: NAME | BIRTHDAY,
        3: EMAIL | NAME,
    }
    assert list(api.subjects_reached(9)) == [1, 2, 3]
    assert api.blast_radius(8) == {4: NAME}
    assert api.blast_radius(404) == {}
    assert len(api.subjects_reached(404)) == 0


def derived_state() -> tuple[list[tuple[int, int, int, int]], dict[tuple[int, int], bytes]]:
    rows = list(
        SubjectDisclosure.objects.order_by("entry_index", "subject_id").values_list(
            "subject_id", "entry_index", "app_id", "mask"
        )
    )
    reach = {(r.app_id, r.bit): bytes(r.bitmap) for r in AppReach.objects.all()}
    return rows, reach


def test_catch_up_is_idempotent_and_a_rebuild_equals_the_incremental_index() -> None:
    for i in range(10):
        record(app_id=1 + i % 2, released=[(s, NAME | (BIRTHDAY if s % 3 else 0)) for s in
                                           range(1 + i, 40 + 3 * i)])  # fmt: skip
        if i % 3 == 1:
            api.catch_up_index(max_subjects=50)  # many small batches, interleaved
    assert api.catch_up_index(max_subjects=50) > 0
    assert api.catch_up_index() == 0
    incremental = derived_state()
    assert api.indexed_upto() == 10
    assert len(incremental[0]) == sum(CallRecord.objects.values_list("subject_count", flat=True))
    call_command("ledger_index", "--rebuild", stdout=io.StringIO())
    assert derived_state() == incremental


# --- consentry ledger verify ------------------------------------------------------------------


def test_verify_passes_on_a_clean_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    fill(10)
    api.latest_signed_tree_head()
    api.catch_up_index()
    fill(2)  # the index may lag behind the ledger: verify checks what is indexed
    consentry_main(["ledger", "verify"])
    out = capsys.readouterr().out
    assert out.startswith("OK: 12 entries, 24 subject records")
    assert "1 signed tree heads" in out


def test_verify_names_the_entry_whose_subjects_were_edited_behind_its_back() -> None:
    fill(8)
    blob = records.pack_subjects(records.normalize([(15, NAME), (506, BIRTHDAY)]))
    raw_sql('UPDATE ledger_callrecord SET subjects = %s WHERE "index" = %s', [blob, 5])
    message = verify_fails_with()
    assert message.startswith("FAILED: entry 5: ")
    assert "leaf hash" in message


def test_verify_names_the_entry_whose_app_was_edited_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fill(8)
    raw_sql('UPDATE ledger_callrecord SET app_id = 999 WHERE "index" IN (3, 6)', [])
    with pytest.raises(SystemExit) as exited:
        consentry_main(["ledger", "verify"])
    assert exited.value.code == 1
    assert "entry 3: " in capsys.readouterr().err


def test_verify_names_a_deleted_entry() -> None:
    fill(8)
    raw_sql('DELETE FROM ledger_callrecord WHERE "index" = %s', [4])
    assert verify_fails_with().startswith("FAILED: entry 4: entry 4 is missing")


def test_verify_notices_the_newest_entry_deleted() -> None:
    fill(8)
    raw_sql('DELETE FROM ledger_callrecord WHERE "index" = %s', [7])
    assert verify_fails_with().startswith("FAILED: entry 7: the ledger head says 8 entries")


def test_verify_catches_an_edit_that_recomputed_the_leaf_hash() -> None:
    """The signed tree head still pins the old tree, so a consistent forgery shows."""
    fill(6)
    api.latest_signed_tree_head()
    forged = records.pack_subjects(records.normalize([(999, NAME)]))
    row = CallRecord.objects.get(index=2)
    leaf = records.record_leaf_hash(
        index=2,
        created_at=row.created_at,
        app_id=row.app_id,
        actor_id=row.actor_id,
        token_id=row.token_id,
        endpoint=row.endpoint,
        subject_count=1,
        subjects=forged,
    )
    raw_sql(
        "UPDATE ledger_callrecord SET subjects = %s, subject_count = 1, leaf_hash = %s"
        ' WHERE "index" = 2',
        [forged, leaf],
    )
    message = verify_fails_with()
    assert "does not match its signed tree head" in message
    assert "[0, 6)" in message


def test_verify_catches_a_forged_tree_head_signature() -> None:
    fill(3)
    api.latest_signed_tree_head()
    raw_sql("UPDATE ledger_signedtreehead SET signature = %s", [bytes(64)])
    assert "invalid signature" in verify_fails_with()


def test_verify_catches_a_derived_index_that_disagrees_with_the_ledger() -> None:
    fill(5)
    api.catch_up_index()
    raw_sql(
        "UPDATE ledger_subjectdisclosure SET mask = %s WHERE entry_index = %s",
        [NAME | EMAIL, 3],
    )
    assert verify_fails_with().startswith("FAILED: entry 3: the derived index")


def test_verify_catches_a_reach_bitmap_that_disagrees_with_the_ledger() -> None:
    fill(5)
    api.catch_up_index()
    AppReach.objects.filter(app_id=2).delete()
    assert "reach bitmap" in verify_fails_with()


# --- Concurrency ---------------------------------------------------------------------------------


def in_threads(work: Callable[[int], None], threads: int) -> None:
    """Run work(n) in `threads` threads, each on its own database connection.

    The SQLite test database is in memory with a shared cache, which reports table locks
    at once where a database file waits (busy_timeout); there each thread's work runs
    under one lock, as SQLite's single writer would have it. PostgreSQL runs them freely.
    """
    errors: list[BaseException] = []
    serial = threading.Lock() if connection.vendor == "sqlite" else contextlib.nullcontext()

    def run(n: int) -> None:
        try:
            with serial:
                work(n)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_get_dense_indexes_and_a_verifiable_tree() -> None:
    def append(n: int) -> None:
        for i in range(15):
            record(app_id=n + 1, actor_id=100 * n + i, released=[(100 * n + i + 1, NAME)])

    in_threads(append, 3)
    assert sorted(CallRecord.objects.values_list("index", flat=True)) == list(range(45))
    report = api.verify_ledger()
    assert report.ok, report.summary()
    assert report.entries == 45


@pytest.mark.django_db(transaction=True)
def test_concurrent_catch_ups_never_derive_the_same_entry_twice() -> None:
    for i in range(30):
        record(app_id=1 + i % 2, released=[(s, NAME) for s in range(1, 20 + i)])

    in_threads(lambda n: api.catch_up_index(max_subjects=40), 3)
    assert api.indexed_upto() == 30
    assert SubjectDisclosure.objects.count() == sum(range(19, 49))
    assert api.verify_ledger().ok


# --- PostgreSQL: an entry as its own transaction (record_disclosure outside atomic) ---------


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_sqlite_refuses_and_postgresql_commits_the_entry_alone() -> None:
    if connection.vendor == "sqlite":
        with pytest.raises(transaction.TransactionManagementError):
            api.record_disclosure(app_id=1, actor_id=1, endpoint="/v1/me", released=[(1, NAME)])
        return
    first = api.record_disclosure(app_id=1, actor_id=1, endpoint="/v1/me", released=[(1, NAME)])
    assert (first, api.ledger_size()) == (0, 1)  # the first append creates the head row
    second = api.record_disclosure(app_id=2, actor_id=3, endpoint="/v1/me", released=[(4, NAME)])
    assert second == 1
    assert list(api.read_entry(1).released) == [(4, NAME)]
    assert api.verify_ledger().ok


@pytest.mark.django_db(transaction=True)
def test_entries_alone_from_many_threads_stay_dense_and_verifiable() -> None:
    """Each thread stands for a server process: they queue on the head row's lock inside
    consentry_ledger_append, and every leaf the server hashed is the one Python computes."""
    if connection.vendor == "sqlite":
        pytest.skip("an entry outside a transaction exists on PostgreSQL only")
    api.record_disclosure(app_id=9, actor_id=9, endpoint="/v1/me", released=[])

    def append(n: int) -> None:
        for i in range(12):
            api.record_disclosure(
                app_id=n + 1,
                actor_id=100 * n + i,
                endpoint="/v1/me/friends" if i % 2 else "/v1/me",
                released=[(i + 1, NAME), (1000 + i, NAME | BIRTHDAY)][: 1 + i % 2],
                token_id=None if i % 3 else 7 + i,
            )

    in_threads(append, 4)
    assert sorted(CallRecord.objects.values_list("index", flat=True)) == list(range(49))
    times = list(CallRecord.objects.order_by("index").values_list("created_at", flat=True))
    assert times == sorted(times)  # stamped under the lock: time follows leaf order
    report = api.verify_ledger()
    assert report.ok, report.summary()


@pytest.mark.django_db(transaction=True)
def test_an_entry_in_a_transaction_that_rolls_back_leaves_no_trace() -> None:
    """On PostgreSQL the server-side append inside a transaction is undone with it: the
    head is where it was and the next entry takes the same index."""
    with transaction.atomic():
        api.record_disclosure(app_id=1, actor_id=1, endpoint="/v1/me", released=[(1, NAME)])
    with contextlib.suppress(RuntimeError), transaction.atomic():
        assert api.record_disclosure(app_id=2, actor_id=2, endpoint="/v1/me", released=[]) == 1
        raise RuntimeError("the response failed after its entry")
    assert api.ledger_size() == 1
    with transaction.atomic():
        assert api.record_disclosure(app_id=3, actor_id=3, endpoint="/v1/me", released=[]) == 1
    assert api.read_entry(1).app_id == 3
    assert api.verify_ledger().ok


@pytest.mark.django_db(transaction=True)
def test_postgresql_refuses_an_append_onto_a_frontier_that_does_not_fit_its_size() -> None:
    """A head row whose frontier does not match its size (damage, or a hand edit) stops
    appends with an error instead of extending a tree nobody can verify."""
    if connection.vendor == "sqlite":
        pytest.skip("the server-side append exists on PostgreSQL only")
    api.record_disclosure(app_id=1, actor_id=1, endpoint="/v1/me", released=[])
    LedgerHead.objects.filter(pk=1).update(size=3)
    with pytest.raises(DatabaseError, match="frontier does not fit"):
        api.record_disclosure(app_id=1, actor_id=2, endpoint="/v1/me", released=[])
    assert CallRecord.objects.count() == 1
