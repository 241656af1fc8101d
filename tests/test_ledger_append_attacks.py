"""Attacks on the ledger's server-side append (migration ledger 0005, consentry_ledger_append)
and on the connection the machine lane keeps between requests on PostgreSQL
(consentry/db/postgresql/base.py): the function's leaf hashes and frontier against Python's
at every size, trees the old Python path began, many appenders at once (alone, in
transactions, rolled back, with partition upkeep), an empty ledger, odd endpoints, and a
kept connection whose server process died, sat too long or came back changed."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from typing import Any

import psycopg
import pytest
from django.db import DataError, close_old_connections, connection, transaction

from consentry.db import pool as checks
from consentry.grants.permissions import RELEASE_BIT
from consentry.ledger import api, merkle, partitions, records
from consentry.ledger.models import CallRecord, LedgerHead, SignedTreeHead
from consentry.web.lane import MachineLane
from tests.graph_fixtures import direct_consent, direct_token
from tests.lane_helpers import Counting, call
from tests.oauth_flow import make_app
from tests.test_ledger import in_threads
from tests.test_ledger_partitions import committed_tiny_partitions, rows_by_partition  # noqa: F401

pytestmark = pytest.mark.django_db

NAME = RELEASE_BIT["name"]
BIRTHDAY = RELEASE_BIT["birthday"]
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the server-side append, appends outside a transaction and the kept connection "
    "exist on PostgreSQL only",
)
ENDPOINTS = ["/v1/me", "/v1/me/friends", "/oauth/userinfo", "", "/é/ü/😀", "x" * 200]


class Boom(Exception):
    pass


def varied(i: int) -> dict[str, Any]:
    """Entry i: every token id shape, endpoint and subject blob size the format allows."""
    return {
        "app_id": 1 + i % 5,
        "actor_id": 2**40 + i if i % 4 else 1,
        "endpoint": ENDPOINTS[i % len(ENDPOINTS)],
        "released": [(s + 1, 1 + (s * 7919 + i) % 0xFFFF) for s in range(i % 23)],
        "token_id": None if i % 3 else (2**63 - 1 if i % 2 else i),
    }


def append(i: int, alone: bool = False) -> int:
    if alone:
        return api.record_disclosure(**varied(i))
    with transaction.atomic():
        return api.record_disclosure(**varied(i))


def head() -> tuple[int, bytes]:
    row = LedgerHead.objects.filter(pk=1).first()
    return (0, b"") if row is None else (row.size, bytes(row.frontier))


def append_the_old_way(i: int) -> int:
    """What the Python append before ledger 0005 (a825283) wrote: the leaf hashed and the
    frontier moved in Python, then the head row and the call record."""
    with transaction.atomic():
        size, blob = head()
        kw = varied(i)
        subjects, count = records.packed(kw["released"])
        created_at = api.timezone.now()
        leaf = records.record_leaf_hash(
            index=size, created_at=created_at, app_id=kw["app_id"], actor_id=kw["actor_id"],
            token_id=kw["token_id"], endpoint=kw["endpoint"], subject_count=count,
            subjects=subjects,
        )  # fmt: skip
        frontier = merkle.frontier_append(merkle.unpack_frontier(blob), size, leaf)
        LedgerHead.objects.update_or_create(
            pk=1, defaults={"size": size + 1, "frontier": merkle.pack_frontier(frontier)}
        )
        CallRecord.objects.create(
            index=size, created_at=created_at, app_id=kw["app_id"], actor_id=kw["actor_id"],
            token_id=kw["token_id"], endpoint=kw["endpoint"], subject_count=count,
            subjects=subjects, leaf_hash=leaf,
        )  # fmt: skip
        return size


def check_tree(n: int) -> None:
    """The stored tree of n entries against first principles: leaves recomputed from the
    rows, the head's frontier, proofs and every signed tree head."""
    leaves = [api.read_entry(i).recomputed_leaf_hash() for i in range(n)]
    assert leaves == [api.read_entry(i).leaf_hash for i in range(n)]
    mth = merkle.range_hasher(leaves)
    frontier: list[bytes] = []
    for size, leaf in enumerate(leaves):
        frontier = merkle.frontier_append(frontier, size, leaf)
    assert head() == (n, merkle.pack_frontier(frontier))
    for sth in SignedTreeHead.objects.all():
        assert bytes(sth.root_hash) == mth(0, sth.tree_size), sth.tree_size
    for i in range(0, n, 5):
        assert api.inclusion_proof(i).verify(), i
    for old in range(1, n, 6):
        path = api.consistency_proof(old, n)
        assert merkle.verify_consistency(old, n, mth(0, old), mth(0, n), path), old
    report = api.verify_ledger()
    assert report.ok, report.summary()
    assert report.entries == n


# --- The function's leaf hashes and frontier ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_every_size_s_frontier_and_leaf_are_python_s_for_varied_records(monkeypatch) -> None:
    """130 entries, each checked as it lands: the head's frontier is the one Python moves
    past Python's leaf hash (every trailing-ones pattern up to 128), alone and in
    transactions on PostgreSQL; a signed tree head every 7 entries, proofs, verify."""
    monkeypatch.setenv("CONSENTRY_LEDGER_STH_INTERVAL", "7")
    frontier: list[bytes] = []
    for i in range(130):
        alone = connection.vendor == "postgresql" and i % 2 == 1
        assert append(i, alone=alone) == i
        entry = api.read_entry(i)
        kw = varied(i)
        subjects, count = records.packed(kw["released"])
        leaf = records.record_leaf_hash(
            index=i, created_at=entry.created_at, app_id=kw["app_id"], actor_id=kw["actor_id"],
            token_id=kw["token_id"], endpoint=kw["endpoint"], subject_count=count,
            subjects=subjects,
        )  # fmt: skip
        assert entry.leaf_hash == leaf, i
        assert (entry.token_id, entry.endpoint) == (kw["token_id"], kw["endpoint"])
        frontier = merkle.frontier_append(frontier, i, leaf)
        assert head() == (i + 1, merkle.pack_frontier(frontier)), i
    assert sorted(SignedTreeHead.objects.values_list("tree_size", flat=True)) == list(
        range(7, 131, 7)
    )
    check_tree(130)


@pytest.mark.django_db(transaction=True)
def test_a_tree_the_old_python_append_began_continues_seamlessly() -> None:
    """The migration lands on a ledger the Python append wrote (and, during a rolling
    deploy, old processes still write): entries written the old way and by today's append
    interleave at every frontier shape, and the tree is one tree."""
    for i in range(70):
        if i % 5 in (0, 2) or 20 <= i < 31:
            assert append_the_old_way(i) == i
        else:
            alone = connection.vendor == "postgresql" and i % 2 == 0
            assert append(i, alone=alone) == i
    check_tree(70)


# --- Many appenders at once ---------------------------------------------------------------------


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_many_first_appenders_on_a_ledger_without_a_head_row_get_dense_indexes() -> None:
    """No head row yet: twelve sessions append at once (alone, in a transaction, in one
    that rolls back), each creating the row or queueing on the one another created."""
    assert not LedgerHead.objects.exists()
    barrier = threading.Barrier(12)
    kept: list[int] = []

    def first(k: int) -> None:
        barrier.wait(10)
        kw = {"app_id": k + 1, "actor_id": k + 1, "endpoint": "/v1/me", "released": []}
        if k % 3 == 0:
            kept.append(api.record_disclosure(**kw))
        elif k % 3 == 1:
            with transaction.atomic():
                kept.append(api.record_disclosure(**kw))
        else:
            with contextlib.suppress(Boom), transaction.atomic():
                api.record_disclosure(**kw)
                raise Boom

    in_threads(first, 12)
    assert sorted(kept) == list(range(8))
    check_tree(8)


@on_postgresql
@pytest.mark.usefixtures("committed_tiny_partitions")
def test_appends_alone_in_transactions_and_rolled_back_beside_partition_upkeep(
    monkeypatch,
) -> None:
    """Six sessions append 30 entries each, at random alone, in a transaction, in one that
    rolls back or in a savepoint that rolls back, while upkeep attaches a partition every
    four leaves: the committed entries are exactly leaves 0..n-1, in their partitions, with
    a signed tree head every 5 and everything verifiable."""
    monkeypatch.setenv("CONSENTRY_LEDGER_STH_INTERVAL", "5")
    done = threading.Event()
    committed: list[int] = []

    def appender(k: int) -> None:
        rng = random.Random(k)
        for i in range(30):
            kw = varied(30 * k + i)
            mode = rng.choice(["alone", "transaction", "rollback", "savepoint"])
            if mode == "alone":
                committed.append(api.record_disclosure(**kw))
            elif mode == "transaction":
                with transaction.atomic():
                    committed.append(api.record_disclosure(**kw))
            elif mode == "rollback":
                with contextlib.suppress(Boom), transaction.atomic():
                    api.record_disclosure(**kw)
                    raise Boom
            else:
                with transaction.atomic():
                    with contextlib.suppress(Boom), transaction.atomic():
                        api.record_disclosure(**kw)
                        raise Boom
                    committed.append(api.record_disclosure(**kw))

    def upkeep(k: int) -> None:
        while not done.is_set():
            partitions.ensure_partitions()

    keeper = threading.Thread(target=lambda: in_threads(upkeep, 1))
    keeper.start()
    try:
        in_threads(appender, 6)
    finally:
        done.set()
        keeper.join()
    partitions.ensure_partitions()
    n = len(committed)
    assert sorted(committed) == list(range(n))
    assert "ledger_callrecord_default" not in rows_by_partition()
    assert set(SignedTreeHead.objects.values_list("tree_size", flat=True)) >= set(
        range(5, n + 1, 5)
    )
    check_tree(n)


# --- Odd endpoints --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "endpoint",
    ["/v1/me   ", " " * 200, "é" * 100, "a\r\n\t\x7f\u2028\ufeff", "😀" * 50, "/v1/\x00me"],
)
def test_an_odd_endpoint_is_recorded_exactly_or_refused_with_nothing_written(endpoint) -> None:
    """Trailing spaces (which a varchar(200) would cut), 200 bytes of two-byte or
    four-byte characters, controls: stored byte for byte and hashed as stored. A NUL byte,
    which PostgreSQL's text cannot hold, is refused there before anything is written."""
    append(0)
    refused = connection.vendor == "postgresql" and "\x00" in endpoint
    kw = {"app_id": 1, "actor_id": 1, "endpoint": endpoint, "released": [(1, NAME)]}
    for alone in [False, True] if connection.vendor == "postgresql" else [False]:
        with contextlib.ExitStack() as stack:
            if refused:
                stack.enter_context(pytest.raises(DataError))
            if not alone:
                stack.enter_context(transaction.atomic())
            api.record_disclosure(**kw)
    stored = list(CallRecord.objects.order_by("index").values_list("endpoint", flat=True))
    assert stored[1:] == ([] if refused else [endpoint] * (len(stored) - 1))
    append(1)  # the next entry takes the next index either way
    check_tree(len(stored) + 1)


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [("/v1/me\ud800", "surrogates not allowed"), ("é" * 101, "longer than")],
)
def test_an_endpoint_the_format_cannot_hold_is_refused_before_the_database(
    endpoint, problem
) -> None:
    with pytest.raises(ValueError, match=problem), transaction.atomic():
        api.record_disclosure(app_id=1, actor_id=1, endpoint=endpoint, released=[])
    assert head() == (0, b"")
    assert not CallRecord.objects.exists()


# --- The connection the machine lane keeps (PostgreSQL) ------------------------------------------


@pytest.fixture
def lane_world(make_person: Any) -> dict[str, Any]:
    person = make_person(birthday="1990-05-17", name="Ada Lane")
    app, _secret = make_app(permissions=["user_birthday"])
    scopes = ["openid", "profile", "user_birthday"]
    token = direct_token(direct_consent(person.pk, app, scopes), scopes)
    return {"person": person, "app": app, "token": token}


def userinfo(app: Any, token: str) -> tuple[int, dict[str, str], bytes]:
    return call(app, "/oauth/userinfo/", headers={"Authorization": f"Bearer {token}"})


def terminate(pid: int) -> None:
    """pg_terminate_backend from a connection of its own (not one of the pool's)."""
    d = connection.settings_dict
    with psycopg.connect(
        host=d["HOST"] or None, port=d["PORT"] or None, user=d["USER"] or None,
        password=d["PASSWORD"] or None, dbname=d["NAME"], autocommit=True,
    ) as other:  # fmt: skip
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]


def dead_connections_lent() -> int:
    """Borrow every idle connection of the pool (each through its check) and count the
    ones that do not work."""
    pool = connection.pool
    lent = [pool.getconn(timeout=5) for _ in range(pool.get_stats()["pool_available"])]
    dead = 0
    for conn in lent:
        try:
            conn.execute("SELECT 1")
        except psycopg.OperationalError:
            dead += 1
        pool.putconn(conn)
    return dead


@contextlib.contextmanager
def fresh_pool_after() -> Any:
    """The tests below leave dead connections behind on purpose: the next test gets a new
    pool."""
    try:
        yield
    finally:
        connection.close()
        connection.close_pool()


def kept_by_the_lane(lane_world: dict[str, Any]) -> tuple[MachineLane, int]:
    lane = MachineLane(Counting())
    assert userinfo(lane, lane_world["token"])[0] == 200  # Django's: teaches the lane
    assert userinfo(lane, lane_world["token"])[0] == 200  # the lane's: keeps the connection
    assert connection.connection is not None
    return lane, connection.connection.info.backend_pid


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_that_died_while_it_sat_is_checked_before_it_is_lent(
    lane_world, monkeypatch
) -> None:
    """Found by this review: a kept connection handed back after it sat longer than the
    pool lends one unchecked was stamped as just returned healthy, and the pool lent it,
    dead, to the next request (a 500). It is now marked with its last use."""
    monkeypatch.setattr(checks, "RECENT_SECONDS", 0.2)
    with fresh_pool_after():
        _lane, pid = kept_by_the_lane(lane_world)
        pool = connection.pool
        # The pool's other idle connections are busy elsewhere: the next borrow gets this one.
        others = [pool.getconn() for _ in range(pool.get_stats()["pool_available"])]
        try:
            terminate(pid)  # a server restart, idle_session_timeout, a failover
            time.sleep(0.3)  # longer than the pool lends a connection unchecked
            # The thread's next request goes through Django: its start hands the kept
            # connection back, and the request borrows from the pool.
            status, _headers, body = userinfo(Counting(), lane_world["token"])
        finally:
            for conn in others:
                pool.putconn(conn)
        assert status == 200, body


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_no_dead_connection_is_lent_after_a_kept_one_goes_back(lane_world, monkeypatch) -> None:
    """The same, at the pool: the connection goes back and is checked before any loan."""
    monkeypatch.setattr(checks, "RECENT_SECONDS", 0.2)
    with fresh_pool_after():
        _lane, pid = kept_by_the_lane(lane_world)
        terminate(pid)
        time.sleep(0.3)
        close_old_connections()  # the thread's next request starts: the connection goes back
        assert connection.connection is None
        assert dead_connections_lent() == 0


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_connection_handed_back_at_the_request_s_end_that_died_idle_is_replaced(
    lane_world, monkeypatch
) -> None:
    """Before the change (and for every connection Django's requests hand back): one that
    died while it sat in the pool fails the pool's check and is never lent."""
    monkeypatch.setattr(checks, "RECENT_SECONDS", 0.2)
    with fresh_pool_after():
        _lane, pid = kept_by_the_lane(lane_world)
        connection.kept_until = 0.0
        close_old_connections()  # handed back as the request ended, as before the change
        terminate(pid)
        time.sleep(0.3)
        close_old_connections()
        assert dead_connections_lent() == 0


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_killed_between_requests_never_answers_wrongly(lane_world) -> None:
    """The server process behind the kept connection is terminated between two lane
    requests: the next UserInfo fails on the lane, goes to Django on a fresh connection and
    gets the same claims with exactly one ledger entry; the lane then keeps the new one."""
    with fresh_pool_after():
        lane, pid = kept_by_the_lane(lane_world)
        before, size = userinfo(lane, lane_world["token"]), api.ledger_size()
        assert connection.connection.info.backend_pid == pid
        terminate(pid)
        after = userinfo(lane, lane_world["token"])
        assert (after[0], json.loads(after[2])) == (200, json.loads(before[2]))
        assert api.ledger_size() == size + 1
        assert lane.app.calls == 2  # the first request, and this one handed over
        again = userinfo(lane, lane_world["token"])
        assert (again[0], again[2]) == (200, before[2])
        assert lane.app.calls == 2
        assert connection.connection.info.backend_pid != pid
        assert api.verify_ledger().ok


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_serves_plain_django_and_goes_back_when_changed(lane_world) -> None:
    """A plain Django request after a lane request uses the kept connection (no borrow);
    one whose autocommit a request left changed, or that saw an error, is not kept."""
    with fresh_pool_after():
        lane, pid = kept_by_the_lane(lane_world)
        borrowed = connection.pool.get_stats()["requests_num"]
        assert userinfo(Counting(), lane_world["token"])[0] == 200  # plain Django
        assert connection.connection.info.backend_pid == pid
        assert connection.pool.get_stats()["requests_num"] == borrowed
        connection.set_autocommit(False)  # as a view that forgot to put it back
        close_old_connections()
        assert connection.connection is None
        assert userinfo(lane, lane_world["token"])[0] == 200
        assert connection.get_autocommit() is True
        connection.errors_occurred = True
        close_old_connections()
        assert connection.connection is None


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_no_more_connections_are_kept_than_leave_the_pool_one_to_lend(
    lane_world, monkeypatch
) -> None:
    """A process keeps at most its pool's size less one: past that a lane answer hands
    its connection back as a Django request does, so idle threads never starve the rest."""
    from consentry.db.postgresql.base import DatabaseWrapper

    assert connection._keep_limit() == connection.settings_dict["OPTIONS"]["pool"]["max_size"] - 1
    monkeypatch.setattr(DatabaseWrapper, "_keep_limit", lambda self: 0)
    with fresh_pool_after():
        lane = MachineLane(Counting())
        assert userinfo(lane, lane_world["token"])[0] == 200  # Django's: teaches the lane
        assert userinfo(lane, lane_world["token"])[0] == 200  # the lane's, not kept
        assert connection.connection is None
        assert connection.kept_until == 0.0
