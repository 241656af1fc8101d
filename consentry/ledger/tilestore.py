"""The ledger's tiles in the database (c2sp.org/tlog-tiles; pure parts in tiles.py).

Level 0 tiles are the call records' leaf hashes, read by index range from
`CallRecord` (at most 256 rows per tile). Levels 1 and up live in `LedgerTile`, derived
from the leaf hashes by catch_up_tiles() behind the `TileWatermark`, the way the
per-person index is derived (api.catch_up_index): the append path stays one INSERT and
one UPDATE, and any writer of call records (the Graph API, a bulk import, a bench) is
covered. Proofs and tile requests first call catch_up_tiles(), which reads only the
state row when nothing is behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.db import connection, transaction

from consentry.ledger import tiles
from consentry.ledger.merkle import RangeHash
from consentry.ledger.models import CallRecord, LedgerHead, LedgerTile, TileWatermark

_CHUNK = 64 * tiles.TILE_WIDTH  # leaves read per query while catching up


def _size() -> int:
    head = LedgerHead.objects.filter(pk=1).first()
    return head.size if head else 0


def tiles_upto() -> int:
    mark = TileWatermark.objects.filter(pk=1).first()
    return mark.upto if mark else 0


def leaf_hashes(start: int, end: int) -> list[bytes]:
    """The stored leaf hashes of entries [start, end), in index order."""
    return [
        bytes(h)
        for h in CallRecord.objects.filter(index__gte=start, index__lt=end)
        .order_by("index")
        .values_list("leaf_hash", flat=True)
    ]


def _locked_mark() -> TileWatermark:
    try:
        return TileWatermark.objects.select_for_update().get(pk=1)
    except TileWatermark.DoesNotExist:
        TileWatermark.objects.bulk_create([TileWatermark(pk=1)], ignore_conflicts=True)
        return TileWatermark.objects.select_for_update().get(pk=1)


def _save_tile(level: int, number: int, hashes: Sequence[bytes]) -> None:
    blob = b"".join(hashes)
    if not LedgerTile.objects.filter(level=level, number=number).update(hashes=blob):
        LedgerTile.objects.create(level=level, number=number, hashes=blob)


def catch_up_tiles(*, max_leaves: int = 1 << 20) -> int:
    """Fold every whole level-0 tile above the watermark into the stored tiles, at most
    `max_leaves` leaves per transaction; returns how many leaves it folded."""
    total = 0
    while True:
        target = _size() // tiles.TILE_WIDTH * tiles.TILE_WIDTH
        if tiles_upto() >= target:
            return total
        done = _catch_up_batch(target, max_leaves)
        if not done:
            return total
        total += done


def _catch_up_batch(target: int, max_leaves: int) -> int:
    with transaction.atomic():
        mark = _locked_mark()
        start = mark.upto
        end = min(target, start + max(tiles.TILE_WIDTH, max_leaves // 256 * 256))
        if start >= end:
            return 0
        pending: list[list[bytes]] = []
        counts: list[int] = []
        level = 1
        while tiles.hashes_at_level(start, level):
            count = tiles.hashes_at_level(start, level)
            width = count % tiles.TILE_WIDTH
            row = (
                LedgerTile.objects.filter(level=level, number=count // tiles.TILE_WIDTH).first()
                if width
                else None
            )
            have = tiles.split_hashes(bytes(row.hashes))[:width] if row else []
            if len(have) != width:
                raise RuntimeError(f"ledger tile level {level} is missing hashes below {start}")
            pending.append(have)
            counts.append(count)
            level += 1
        builder = tiles.TileBuilder(pending, counts, _save_tile)
        for lo in range(start, end, _CHUNK):
            hi = min(end, lo + _CHUNK)
            leaves = leaf_hashes(lo, hi)
            if len(leaves) != hi - lo:
                raise RuntimeError(f"ledger entries [{lo}, {hi}) are not all stored")
            builder.push_leaves(leaves)
        for dirty in sorted(builder.dirty):
            hashes = builder.pending[dirty - 1]
            if hashes:
                _save_tile(dirty, builder.counts[dirty - 1] // tiles.TILE_WIDTH, hashes)
        mark.upto = end
        mark.save(update_fields=["upto"])
        return end - start


def read_hashes(level: int, start: int, end: int) -> list[bytes]:
    """Hashes [start, end) at `level`, all inside one tile (ValueError if absent)."""
    if level == 0:
        out = leaf_hashes(start, end)
    else:
        number = start // tiles.TILE_WIDTH
        row = LedgerTile.objects.filter(level=level, number=number).first()
        blob = bytes(row.hashes) if row else b""
        offset = number * tiles.TILE_WIDTH
        out = tiles.split_hashes(blob)[start - offset : end - offset]
    if len(out) != end - start:
        raise ValueError(f"hashes [{start}, {end}) at level {level} are not stored")
    return out


_DUMMY = bytes(32)
# Per database alias, a tree size the tiles are known to cover (they only grow), so a
# proof needs no query for the watermark; read() catches up if the hint was stale.
_upto_hint: dict[str, int] = {}


def range_hasher(tree_size: int, plan: Callable[[RangeHash], object] | None = None) -> RangeHash:
    """A merkle.RangeHash for the tree of `tree_size` entries, computed from tiles: a
    proof reads a few tiles per level, O(log n), whatever the size.

    With `plan` (the proof computation, e.g. `lambda mth: inclusion_path(i, n, mth)`),
    the tiles it will need are found first by running it over placeholder hashes (the
    shape of a proof does not depend on hash values), then fetched in at most two
    queries: one for the level-0 tiles (leaf hashes), one for the tiles above."""
    needed = tree_size // tiles.TILE_WIDTH * tiles.TILE_WIDTH
    alias = connection.alias
    if _upto_hint.get(alias, -1) < needed:
        if tiles_upto() < needed:
            catch_up_tiles()
        _upto_hint[alias] = needed
    cache: dict[tuple[int, int], list[bytes]] = {}

    def span(level: int, number: int) -> tuple[int, int]:
        offset = number * tiles.TILE_WIDTH
        return offset, offset + tiles.tile_width(tree_size, level, number)

    if plan is not None:
        wanted: set[tuple[int, int]] = set()

        def record(level: int, start: int, end: int) -> list[bytes]:
            wanted.add((level, start // tiles.TILE_WIDTH))
            return [_DUMMY] * (end - start)

        plan(tiles.tile_range_hash(record, root=lambda hashes: _DUMMY))
        cache.update(_fetch_tiles(wanted, span))

    def read(level: int, start: int, end: int) -> list[bytes]:
        number = start // tiles.TILE_WIDTH
        key = (level, number)
        lo, hi = span(level, number)
        if len(cache.get(key, ())) != hi - lo:
            try:
                cache[key] = read_hashes(level, lo, hi)
            except ValueError:
                if level == 0:
                    raise
                # The hint was stale (tiles rolled back or rebuilt): catch up, once.
                _upto_hint.pop(alias, None)
                catch_up_tiles()
                cache[key] = read_hashes(level, lo, hi)
        offset = number * tiles.TILE_WIDTH
        out = cache[key][start - offset : end - offset]
        if len(out) != end - start:
            raise ValueError(f"hashes [{start}, {end}) at level {level} are not stored")
        return out

    return tiles.tile_range_hash(read)


def _fetch_tiles(
    wanted: set[tuple[int, int]], span: Callable[[int, int], tuple[int, int]]
) -> dict[tuple[int, int], list[bytes]]:
    """The tiles `wanted` (level, number), each cut to its width, in two queries (plain
    SQL: on this path the ORM's query building costs more than the database)."""
    out: dict[tuple[int, int], list[bytes]] = {}
    q = connection.ops.quote_name
    ground = sorted(n for level, n in wanted if level == 0)
    with connection.cursor() as cursor:
        if ground:
            ranges = [span(0, n) for n in ground]
            where = " OR ".join(f"({q('index')} >= %s AND {q('index')} < %s)" for _ in ranges)
            cursor.execute(
                f"SELECT {q('index')}, leaf_hash FROM {q(CallRecord._meta.db_table)} "  # noqa: S608
                f"WHERE {where} ORDER BY {q('index')}",
                [bound for pair in ranges for bound in pair],
            )
            for n in ground:
                out[(0, n)] = []
            for index, leaf in cursor.fetchall():
                out[(0, index // tiles.TILE_WIDTH)].append(bytes(leaf))
        upper = sorted(key for key in wanted if key[0] > 0)
        if upper:
            where = " OR ".join("(level = %s AND number = %s)" for _ in upper)
            cursor.execute(
                f"SELECT level, number, hashes FROM {q(LedgerTile._meta.db_table)} "  # noqa: S608
                f"WHERE {where}",
                [value for pair in upper for value in pair],
            )
            for level, n, blob in cursor.fetchall():
                lo, hi = span(level, n)
                out[(level, n)] = tiles.split_hashes(bytes(blob))[: hi - lo]
    return out


def read_tile(level: int, number: int, width: int) -> bytes | None:
    """The bytes of tile `level`/`number` of `width` hashes, or None when the ledger
    does not hold it yet (c2sp.org/tlog-tiles: empty tiles are never served)."""
    size = _size()
    if width == 0 or tiles.tile_width(size, level, number) < width:
        return None
    if level and tiles_upto() < size // tiles.TILE_WIDTH * tiles.TILE_WIDTH:
        catch_up_tiles()
    offset = number * tiles.TILE_WIDTH
    return b"".join(read_hashes(level, offset, offset + width))


def check_tiles() -> str | None:
    """Recompute every stored tile from the leaf hashes; a problem, or None."""
    upto = tiles_upto()
    built: dict[tuple[int, int], bytes] = {}

    def full(level: int, number: int, hashes: list[bytes]) -> None:
        built[(level, number)] = b"".join(hashes)

    builder = tiles.TileBuilder([], [], full)
    for lo in range(0, upto, _CHUNK):
        leaves = leaf_hashes(lo, min(upto, lo + _CHUNK))
        if len(leaves) != min(upto, lo + _CHUNK) - lo:
            return f"the tiles cover {upto} entries but fewer are stored"
        builder.push_leaves(leaves)
    for i, hashes in enumerate(builder.pending):
        if hashes:
            built[(i + 1, builder.counts[i] // tiles.TILE_WIDTH)] = b"".join(hashes)
    stored = {
        (level, number): bytes(blob)
        for level, number, blob in LedgerTile.objects.values_list("level", "number", "hashes")
    }
    for key in sorted(set(built) | set(stored)):
        if built.get(key) != stored.get(key):
            return f"ledger tile {key[0]}/{key[1]} does not match the leaf hashes"
    return None
