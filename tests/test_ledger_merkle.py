"""The ledger's pure parts (RFC 6962 Merkle tree, record encoding, tree head signing),
tested without a database against a straightforward recursive RFC 6962 implementation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from consentry.ledger import merkle, records, signing


def ref_mth(inputs: list[bytes]) -> bytes:
    """MTH straight from RFC 6962 section 2.1, over leaf inputs."""
    n = len(inputs)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + inputs[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(inputs[:k]) + ref_mth(inputs[k:])).digest()


def ref_path(m: int, inputs: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) straight from RFC 6962 section 2.1.1."""
    n = len(inputs)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, inputs[:k]), ref_mth(inputs[k:])]
    return [*ref_path(m - k, inputs[k:]), ref_mth(inputs[:k])]


def ref_subproof(m: int, inputs: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) straight from RFC 6962 section 2.1.2."""
    n = len(inputs)
    if m == n:
        return [] if b else [ref_mth(inputs)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, inputs[:k], b), ref_mth(inputs[k:])]
    return [*ref_subproof(m - k, inputs[k:], False), ref_mth(inputs[:k])]


def inputs_of(n: int) -> list[bytes]:
    return [f"call record {i}".encode() for i in range(n)]


@pytest.mark.parametrize("n", range(71))
def test_frontier_root_equals_recursive_rfc6962_root(n: int) -> None:
    inputs = inputs_of(n)
    frontier: list[bytes] = []
    for i, data in enumerate(inputs):
        frontier = merkle.frontier_append(frontier, i, merkle.leaf_hash(data))
        assert len(frontier) == (i + 1).bit_count()
    assert merkle.frontier_root(frontier) == ref_mth(inputs)
    leaves = [merkle.leaf_hash(d) for d in inputs]
    assert merkle.root_from_leaf_hashes(leaves) == ref_mth(inputs)


def test_known_answer_for_empty_and_single_leaf_trees() -> None:
    """RFC 6962 / RFC 9162 test vectors: the empty root and the root of one empty leaf."""
    assert merkle.frontier_root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 13, 16, 31, 33])
def test_inclusion_proof_of_every_leaf_matches_rfc_and_verifies(n: int) -> None:
    inputs = inputs_of(n)
    leaves = [merkle.leaf_hash(d) for d in inputs]
    root = ref_mth(inputs)
    mth = merkle.range_hasher(leaves)
    for m in range(n):
        path = merkle.inclusion_path(m, n, mth)
        assert path == ref_path(m, inputs)
        assert merkle.verify_inclusion(leaves[m], m, n, path, root)


@pytest.mark.parametrize("n", [2, 3, 6, 9, 17])
def test_tampered_inclusion_proof_fails(n: int) -> None:
    inputs = inputs_of(n)
    leaves = [merkle.leaf_hash(d) for d in inputs]
    root = ref_mth(inputs)
    mth = merkle.range_hasher(leaves)
    for m in range(n):
        path = merkle.inclusion_path(m, n, mth)
        flipped = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
        assert not merkle.verify_inclusion(leaves[m], m, n, flipped, root)
        assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), m, n, path, root)
        assert not merkle.verify_inclusion(leaves[m], (m + 1) % n, n, path, root)
        assert not merkle.verify_inclusion(leaves[m], m, n, path[:-1], root)
        assert not merkle.verify_inclusion(leaves[m], m, n, [*path, root], root)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))))
def test_consistency_proofs_match_rfc_and_verify(sizes: tuple[int, int]) -> None:
    new, old = sizes
    inputs = inputs_of(new)
    mth = merkle.range_hasher([merkle.leaf_hash(d) for d in inputs])
    proof = merkle.consistency_path(old, new, mth)
    assert proof == ref_subproof(old, inputs, True)
    old_root, new_root = ref_mth(inputs[:old]), ref_mth(inputs)
    assert merkle.verify_consistency(old, new, old_root, new_root, proof)
    assert not merkle.verify_consistency(old, new, ref_mth(inputs_of(old - 1)), new_root, proof)
    if proof:
        bad = [bytes(32), *proof[1:]]
        assert not merkle.verify_consistency(old, new, old_root, new_root, bad)


def test_normalize_sorts_subjects_and_ors_repeated_masks() -> None:
    rel = records.normalize([(30, 1), (10, 2), (30, 4), (20, 8)])
    assert rel.pairs() == ((10, 2), (20, 8), (30, 5))
    assert records.unpack_subjects(records.pack_subjects(rel)).pairs() == rel.pairs()
    assert len(records.pack_subjects(rel)) == 30


@pytest.mark.parametrize("bad", [[(1, 0)], [(0, 1)], [(1, 1 << 16)], [(2**32, 1)], [(5, -1)]])
def test_normalize_refuses_what_it_cannot_record_exactly(bad: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        records.normalize(bad)


def test_leaf_input_covers_every_field_of_the_record() -> None:
    base = {
        "index": 7,
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "app_id": 3,
        "actor_id": 9,
        "token_id": None,
        "endpoint": "/v1/me/friends",
        "subject_count": 1,
        "subjects": records.pack_subjects(records.normalize([(5, 3)])),
    }
    changes = {
        "index": 8,
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 678902, tzinfo=UTC),
        "app_id": 4,
        "actor_id": 10,
        "token_id": 0,
        "endpoint": "/v1/me",
        "subject_count": 2,
        "subjects": records.pack_subjects(records.normalize([(5, 1)])),
    }
    original = records.record_leaf_hash(**base)  # type: ignore[arg-type]
    for key, value in changes.items():
        assert records.record_leaf_hash(**{**base, key: value}) != original, key  # type: ignore[arg-type]


def test_signed_tree_head_verifies_with_the_public_key_and_fails_when_altered() -> None:
    key = Ed25519PrivateKey.generate()
    root = hashlib.sha256(b"root").digest()
    data = signing.tree_head_bytes(12, 1_700_000_000_000, root)
    assert len(data) == 50
    sth = signing.SignedTreeHead(12, 1_700_000_000_000, root, key.sign(data))
    assert signing.verify_tree_head(sth, key.public_key())
    for altered in (
        signing.SignedTreeHead(13, sth.timestamp_ms, root, sth.signature),
        signing.SignedTreeHead(12, sth.timestamp_ms + 1, root, sth.signature),
        signing.SignedTreeHead(12, sth.timestamp_ms, bytes(32), sth.signature),
        signing.SignedTreeHead(12, sth.timestamp_ms, root, bytes(64)),
    ):
        assert not signing.verify_tree_head(altered, key.public_key())
    other = Ed25519PrivateKey.generate().public_key()
    assert not signing.verify_tree_head(sth, other)


def test_signing_key_is_created_on_first_use_with_mode_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys" / "ledger.pem"
    monkeypatch.setenv("CONSENTRY_LEDGER_KEY_PATH", str(path))
    sth = signing.sign_tree_head(3, 1, hashlib.sha256(b"r").digest())
    assert path.stat().st_mode & 0o777 == 0o600
    assert signing.verify_tree_head(sth, signing.public_key_pem())
    assert signing.signing_key() is signing.signing_key()


_pairs = st.lists(
    st.tuples(st.integers(-3, records.MAX_SUBJECT_ID + 3), st.integers(-2, records.MAX_MASK + 2)),
    max_size=records.SMALL + 8,
)


# Ascending ids, as a friends page releases them (packed's fast path), some out of range.
_ascending = st.lists(
    st.integers(-2, records.MAX_SUBJECT_ID + 2), unique=True, max_size=records.SMALL + 40
).flatmap(
    lambda ids: st.lists(
        st.integers(-1, records.MAX_MASK + 1), min_size=len(ids), max_size=len(ids)
    ).map(lambda masks: list(zip(sorted(ids), masks, strict=True)))
)


@given(
    _pairs | st.lists(st.tuples(st.integers(1, 40), st.integers(1, 7)), max_size=90) | _ascending
)
def test_packed_is_normalize_then_pack(released: list[tuple[int, int]]) -> None:
    """The append path's packing (as given for ascending ids, pure Python for a few pairs,
    numpy past SMALL) gives the very bytes and count of normalize() + pack_subjects(), and
    refuses the same inputs."""
    try:
        rel = records.normalize(released)
    except ValueError:
        # Refused too (when an input breaks two rules, either may be named).
        with pytest.raises(ValueError, match="must"):
            records.packed(released)
        return
    assert records.packed(released) == (records.pack_subjects(rel), len(rel))
