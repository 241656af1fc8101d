"""App-scoped ids: stable per app, different across apps, useless to another app."""

from __future__ import annotations

import sys
import threading

from hypothesis import given
from hypothesis import strategies as st

from consentry.oauth import pairwise
from consentry.oauth.pairwise import app_scoped_id, app_scoped_ids, cipher_ids, person_id_for

ids = st.integers(min_value=1, max_value=2**62)


@given(app=ids, other_app=ids, person=ids)
def test_scoped_id_round_trips_only_for_its_own_app(app, other_app, person):
    sid = app_scoped_id(app, person)
    assert len(sid) == 26
    assert person_id_for(app, sid) == person
    if other_app != app:
        assert app_scoped_id(other_app, person) != sid
        assert person_id_for(other_app, sid) is None


def test_batch_matches_single(settings):
    people = list(range(1, 500))
    made = cipher_ids(7, settings.PAIRWISE_KEY, people)
    assert [person_id_for(7, sid) for sid in made] == people
    assert app_scoped_ids(7, people) == made == [app_scoped_id(7, p) for p in people]
    assert len(set(made)) == len(people)


def test_remembered_ids_are_the_ciphers_own(settings, monkeypatch) -> None:
    """The per-process memo of batch ids answers exactly what the cipher makes: for ids
    partly remembered, in any order, with repeats, across apps and operator keys, and
    past its bound (where it starts again)."""
    monkeypatch.setattr(pairwise, "MEMO_MAX", 50)
    monkeypatch.setattr(pairwise, "_memo", {})
    monkeypatch.setattr(pairwise, "_memo_size", 0)
    key = settings.PAIRWISE_KEY
    assert app_scoped_ids(9, [5, 6, 7]) == cipher_ids(9, key, [5, 6, 7])
    mixed = [40, 6, 41, 5, 6, 42]  # some remembered, one asked twice
    assert app_scoped_ids(9, mixed) == cipher_ids(9, key, mixed)
    assert app_scoped_ids(10, [5, 6]) == cipher_ids(10, key, [5, 6]) != cipher_ids(9, key, [5, 6])
    many = list(range(100, 140))  # past the bound: the memo starts again
    assert app_scoped_ids(9, many) == cipher_ids(9, key, many)
    assert pairwise._memo_size <= 50
    assert app_scoped_ids(9, mixed) == cipher_ids(9, key, mixed)
    huge = list(range(1000, 1060))  # more than the memo may hold: made, not kept
    assert app_scoped_ids(9, huge) == cipher_ids(9, key, huge)
    assert pairwise._memo_size <= 50
    settings.PAIRWISE_KEY = "cd" * 32
    assert app_scoped_ids(9, mixed) == cipher_ids(9, "cd" * 32, mixed) != cipher_ids(9, key, mixed)


def test_memo_stays_bounded_under_request_threads(settings, monkeypatch) -> None:
    """Request threads share the memo: however their calls interleave, it never holds
    more than MEMO_MAX ids, its count is the ids it holds, and every answer is the
    cipher's. (Unlocked, a thread that read the size before another started the memo
    again added its ids past the bound, or counted ids into a dict no longer used.)"""
    monkeypatch.setattr(pairwise, "MEMO_MAX", 1000)
    monkeypatch.setattr(pairwise, "_memo", {})
    monkeypatch.setattr(pairwise, "_memo_size", 0)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    key = settings.PAIRWISE_KEY
    held = [0]  # the most ids the memo was seen holding
    wrong: list[int] = []
    done = threading.Event()

    def call(worker: int) -> None:
        for i in range(300):
            # Pages of 150 ids, overlapping the worker's last page and other workers' pages.
            page = list(range(75 * i + 37 * worker, 75 * i + 37 * worker + 150))
            if app_scoped_ids(1 + worker % 2, page) != cipher_ids(1 + worker % 2, key, page):
                wrong.append(worker)

    def watch() -> None:
        while not done.is_set():
            held[0] = max(held[0], sum(len(ids) for ids in list(pairwise._memo.values())))

    workers = [threading.Thread(target=call, args=(w,)) for w in range(6)]
    watcher = threading.Thread(target=watch)
    try:
        watcher.start()
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    finally:
        done.set()
        watcher.join()
        sys.setswitchinterval(interval)
    assert not wrong
    assert held[0] <= pairwise.MEMO_MAX
    assert pairwise._memo_size == sum(len(ids) for ids in pairwise._memo.values())


def test_garbage_is_unknown():
    for text in ["", "x" * 26, "1" * 26, "abc", "é" * 26, app_scoped_id(1, 1)[:-1] + "!"]:
        assert person_id_for(1, text) is None


@given(st.lists(st.binary(min_size=16, max_size=16), max_size=40))
def test_batch_encoding_is_base32_of_each_block(blocks: list[bytes]) -> None:
    """Ids issued a page at a time are exactly the ids issued one at a time: the numpy
    regrouping gives base64.b32encode's digits for every block, below and above the size
    where it takes over."""
    from consentry.oauth.pairwise import _encode, _encode_blocks

    assert _encode_blocks(b"".join(blocks)) == [_encode(block) for block in blocks]


def test_a_remembered_id_follows_the_pairwise_key(settings) -> None:
    """Ids are remembered per process; a new operator key gives new ids at once."""
    before = app_scoped_id(3, 42)
    assert app_scoped_id(3, 42) == before == app_scoped_ids(3, [42])[0]
    settings.PAIRWISE_KEY = "ab" * 32
    after = app_scoped_id(3, 42)
    assert after != before
    assert after == app_scoped_ids(3, [42])[0]
    assert person_id_for(3, after) == 42
