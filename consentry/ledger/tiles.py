"""C2SP tlog-tiles: the ledger's Merkle tree stored and served as tiles (pure functions).

From c2sp.org/tlog-tiles ("Merkle Tree"): a tile is a run of at most 256 consecutive
Merkle Tree Hashes at one level. The n-th tile at level l holds, for i in 0..255,

    MTH(D[(n * 256 + i) * 256**l : (n * 256 + i + 1) * 256**l])

so level 0 holds leaf hashes, and each hash at level l + 1 is the root of one *full*
tile at level l. A tile of fewer than 256 hashes is *partial* (path suffix `.p/<W>`);
a partial tile is never hashed into the level above.

Every perfect, aligned subtree of 2**k leaves is the root of 2**(k mod 8) consecutive
hashes of one tile at level k // 8, and every range an RFC 6962 proof asks for splits
into such subtrees. tile_range_hash() therefore computes any proof from at most a few
tiles per level: O(log n) reads of 8 KiB at any tree size.

No database here; consentry/ledger/tilestore.py reads and writes the tiles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from consentry.ledger.merkle import EMPTY_ROOT, HASH_SIZE, node_hash, split_point

TILE_WIDTH = 256
TILE_HEIGHT = 8
MAX_LEVEL = 63

# tile/<L>/<N>[.p/<W>]: L without leading zeroes (0..63); N in 3-digit path elements,
# every element but the last starting with "x"; W 1..255 without leading zeroes.
_TILE_PATH = re.compile(
    r"^(?P<level>0|[1-9][0-9]?)/(?P<n>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<w>[1-9][0-9]{0,2}))?$"
)

# Hashes [start, end) at `level` (all inside one tile), as a list of 32-byte hashes.
HashReader = Callable[[int, int, int], Sequence[bytes]]


def encode_index(n: int) -> str:
    """The tile index as zero-padded 3-digit path elements: 1234067 -> x001/x234/067."""
    if n < 0:
        raise ValueError("a tile index is not negative")
    digits = str(n)
    digits = digits.zfill(-(-len(digits) // 3) * 3)
    parts = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + p for p in parts[:-1]), parts[-1]])


def tile_path(level: int, n: int, width: int = TILE_WIDTH) -> str:
    """`<L>/<N>[.p/<W>]`, the part of a tile's URL after `tile/`."""
    path = f"{level}/{encode_index(n)}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


def parse_tile_path(path: str) -> tuple[int, int, int] | None:
    """(level, index, width) for a tile path after `tile/`, or None if it is not one."""
    match = _TILE_PATH.match(path)
    if match is None:
        return None
    level = int(match["level"])
    width = int(match["w"]) if match["w"] else TILE_WIDTH
    if level > MAX_LEVEL or width > TILE_WIDTH - (1 if match["w"] else 0):
        return None
    digits = "".join(part.removeprefix("x") for part in match["n"].split("/"))
    return level, int(digits), width


def hashes_at_level(tree_size: int, level: int) -> int:
    """How many hashes a tree of `tree_size` leaves has at `level` (complete ones only)."""
    return tree_size // TILE_WIDTH**level


def tile_width(tree_size: int, level: int, n: int) -> int:
    """The width of tile n at `level` in a tree of `tree_size` leaves (0: no such tile)."""
    count = hashes_at_level(tree_size, level)
    return max(0, min(TILE_WIDTH, count - n * TILE_WIDTH))


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree over 2**k hashes of one level (k may be 0)."""
    count = len(hashes)
    if count == 0 or count & (count - 1):
        raise ValueError(f"{count} hashes do not form a perfect subtree")
    layer = list(hashes)
    while len(layer) > 1:
        layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


def split_hashes(blob: bytes) -> list[bytes]:
    if len(blob) % HASH_SIZE:
        raise ValueError("a tile is a whole number of hashes")
    return [bytes(blob[i : i + HASH_SIZE]) for i in range(0, len(blob), HASH_SIZE)]


def tile_range_hash(
    read: HashReader, root: Callable[[Sequence[bytes]], bytes] | None = None
) -> Callable[[int, int], bytes]:
    """A merkle.RangeHash that computes MTH(D[lo:hi]) from tile hashes.

    `read(level, start, end)` returns the hashes [start, end) at `level`; it is only
    asked for ranges inside one tile whose hashes exist. Ranges that are not a perfect
    aligned subtree are split as RFC 6962 section 2.1 does (largest power of two left).
    `root` replaces perfect_root (a planning pass that only records reads skips hashing).
    """
    combine = perfect_root if root is None else root

    def mth(lo: int, hi: int) -> bytes:
        n = hi - lo
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            level = (n.bit_length() - 1) // TILE_HEIGHT
            unit = TILE_WIDTH**level
            return combine(read(level, lo // unit, hi // unit))
        k = split_point(n)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    return mth


class TileBuilder:
    """Folds leaf hashes, 256 at a time, into the tiles of level 1 and above.

    `pending[l]` is the unfinished tile at level l + 1 (fewer than 256 hashes); every
    full tile is reported to `on_full(level, index, hashes)` exactly once."""

    def __init__(
        self,
        pending: list[list[bytes]],
        counts: list[int],
        on_full: Callable[[int, int, list[bytes]], None],
    ) -> None:
        self.pending = pending  # pending[i]: hashes of the last tile at level i + 1
        self.counts = counts  # counts[i]: hashes at level i + 1 in total
        self.on_full = on_full
        self.dirty: set[int] = set()

    def push(self, level: int, digest: bytes) -> None:
        """Add one hash at `level` (>= 1): the root of a full tile at level - 1."""
        i = level - 1
        while len(self.pending) <= i:
            self.pending.append([])
            self.counts.append(0)
        self.pending[i].append(digest)
        self.counts[i] += 1
        self.dirty.add(level)
        if len(self.pending[i]) == TILE_WIDTH:
            full = self.pending[i]
            self.pending[i] = []
            self.on_full(level, self.counts[i] // TILE_WIDTH - 1, full)
            self.push(level + 1, perfect_root(full))

    def push_leaves(self, leaves: Sequence[bytes]) -> None:
        """Add whole level-0 tiles (a multiple of 256 leaf hashes)."""
        if len(leaves) % TILE_WIDTH:
            raise ValueError("leaves come in whole tiles of 256")
        for start in range(0, len(leaves), TILE_WIDTH):
            self.push(1, perfect_root(leaves[start : start + TILE_WIDTH]))
