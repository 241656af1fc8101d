"""Pure Merkle tree functions for the disclosure ledger, RFC 6962 section 2.1.

No database and no Django here: the ledger's ORM shell (consentry/ledger/api.py) feeds
these functions hashes and stores what they return, and a person who holds a leaf hash,
an audit path and a signed root can check them with nothing but this file.

Hashing (RFC 6962 section 2.1):
    leaf hash  = SHA-256(0x00 || leaf input)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256()
    MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])) with k the largest power of two < n.

The *frontier* (a "compact range" over [0, n)) is the list of roots of the perfect
subtrees that make up the first n leaves, largest first: one hash per set bit of n, so
O(log n) hashes. It is all an append-only log needs to compute its root after each append.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

# Returns MTH(D[lo:hi]) for the leaves of one tree; how it is computed (from stored leaf
# hashes, cached subtrees, ...) is the caller's business.
RangeHash = Callable[[int, int], bytes]


def leaf_hash(leaf_input: bytes) -> bytes:
    """SHA-256(0x00 || leaf_input), RFC 6962 section 2.1."""
    return hashlib.sha256(LEAF_PREFIX + leaf_input).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right), RFC 6962 section 2.1."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2), RFC 6962 section 2.1."""
    if n < 2:
        raise ValueError("a split needs at least two leaves")
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes (not leaf inputs), iteratively in O(n) hashes."""
    frontier: list[bytes] = []
    for size, leaf in enumerate(leaves):
        frontier = frontier_append(frontier, size, leaf)
    return frontier_root(frontier)


# --- The frontier (compact range [0, n)) ----------------------------------------------------


def frontier_append(frontier: list[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The frontier of size+1 leaves from the frontier of `size` leaves and one leaf hash.

    Each trailing one-bit of `size` is a perfect subtree that the new leaf completes into a
    subtree twice as big; merge them, as a binary counter carries. Returns a new list.
    """
    if len(frontier) != size.bit_count():
        raise ValueError(f"frontier of {len(frontier)} hashes does not fit tree size {size}")
    out = list(frontier)
    h = leaf
    s = size
    while s & 1:
        h = node_hash(out.pop(), h)
        s >>= 1
    out.append(h)
    return out


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """MTH of the leaves a frontier covers: fold the perfect subtrees from the right.

    RFC 6962's split puts the largest power of two on the left, so the tree over n leaves
    is node(P1, node(P2, ... node(P_{k-1}, P_k))) over its perfect subtrees P1 > P2 > ...
    """
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for h in reversed(frontier[:-1]):
        root = node_hash(h, root)
    return root


def pack_frontier(frontier: Sequence[bytes]) -> bytes:
    return b"".join(frontier)


def unpack_frontier(blob: bytes) -> list[bytes]:
    if len(blob) % HASH_SIZE:
        raise ValueError("frontier blob is not a whole number of hashes")
    return [bytes(blob[i : i + HASH_SIZE]) for i in range(0, len(blob), HASH_SIZE)]


# --- Range hashes over a list of leaf hashes -------------------------------------------------


def range_hasher(leaves: Sequence[bytes]) -> RangeHash:
    """A RangeHash over an in-memory list of leaf hashes (each range hashed once, cached)."""
    cache: dict[tuple[int, int], bytes] = {}

    def mth(lo: int, hi: int) -> bytes:
        key = (lo, hi)
        if key not in cache:
            n = hi - lo
            if n == 0:
                cache[key] = EMPTY_ROOT
            elif n == 1:
                cache[key] = leaves[lo]
            else:
                k = split_point(n)
                cache[key] = node_hash(mth(lo, lo + k), mth(lo + k, hi))
        return cache[key]

    return mth


# --- Inclusion proofs, RFC 6962 section 2.1.1 ------------------------------------------------


def inclusion_path(index: int, size: int, mth: RangeHash) -> list[bytes]:
    """The audit path PATH(m, D[n]) for leaf `index` in a tree of `size` leaves.

    RFC 6962 section 2.1.1: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) when m < k,
    else PATH(m - k, D[k:n]) : MTH(D[0:k]). Returned leaf-to-root order.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = split_point(hi - lo)
        if m < k:
            path.append(mth(lo + k, hi))
            hi = lo + k
        else:
            path.append(mth(lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def root_from_inclusion_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root an audit path implies; raises ValueError if the path has the wrong shape.

    The verification algorithm of RFC 9162 section 2.1.3.2, which checks RFC 6962 paths.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise ValueError("audit path is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("audit path is too short")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when `proof` shows the leaf with hash `leaf_hash` at `index` in the tree of
    `tree_size` leaves whose root is `root` (RFC 6962 section 2.1.1 audit path)."""
    try:
        return root_from_inclusion_path(leaf_hash, index, tree_size, proof) == root
    except ValueError:
        return False


# --- Consistency proofs, RFC 6962 section 2.1.2 ----------------------------------------------


def consistency_path(old_size: int, new_size: int, mth: RangeHash) -> list[bytes]:
    """PROOF(m, D[n]) for 0 < m <= n, RFC 6962 section 2.1.2 (SUBPROOF with b = true)."""
    if not 0 < old_size <= new_size:
        raise ValueError("a consistency proof needs 0 < old size <= new size")
    proof: list[bytes] = []
    m, lo, hi, complete = old_size, 0, new_size, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                proof.append(mth(lo, hi))
            break
        k = split_point(n)
        if m <= k:
            proof.append(mth(lo + k, hi))
            hi = lo + k
        else:
            proof.append(mth(lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    proof.reverse()
    return proof


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check a consistency proof between two tree heads (RFC 9162 section 2.1.4.2)."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
