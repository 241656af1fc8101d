"""The ledger's Merkle tree as C2SP tlog-tiles: tile math against RFC 6962 proofs, the
stored tiles, and /ledger/tile/ as a tlog-tiles client reads it."""

from __future__ import annotations

import hashlib
import random

import pytest
from django.db import connection, transaction
from django.test import Client

from consentry.grants.permissions import RELEASE_BIT
from consentry.ledger import api, merkle, tiles, tilestore
from consentry.ledger.models import LedgerTile

NAME = RELEASE_BIT["name"]


def synthetic_leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]


def build_tiles(leaves: list[bytes]) -> dict[tuple[int, int], list[bytes]]:
    """Tiles at every level straight from the tlog-tiles formula, by brute force."""
    out: dict[tuple[int, int], list[bytes]] = {}
    level, layer = 0, leaves
    while layer:
        for start in range(0, len(layer), 256):
            out[(level, start // 256)] = layer[start : start + 256]
        layer = [tiles.perfect_root(layer[i : i + 256]) for i in range(0, len(layer) - 255, 256)]
        level += 1
    return out


# --- Pure tile math ----------------------------------------------------------------------------


def test_tile_paths_follow_the_spec_examples() -> None:
    assert tiles.encode_index(1234067) == "x001/x234/067"
    assert tiles.encode_index(0) == "000"
    assert tiles.tile_path(1, 1234067, 17) == "1/x001/x234/067.p/17"
    assert tiles.parse_tile_path("1/x001/x234/067.p/17") == (1, 1234067, 17)
    assert tiles.parse_tile_path("0/000") == (0, 0, 256)
    for bad in ("01/000", "0/1", "0/001/002", "0/x001", "0/000.p/0", "0/000.p/256",
                "64/000", "0/000.p/07", "entries/000", "0/000/"):  # fmt: skip
        assert tiles.parse_tile_path(bad) is None, bad


def test_a_tree_of_70000_has_the_tiles_the_spec_lists() -> None:
    """tlog-tiles: 273 full level 0 tiles, a partial of 112, one full level 1 tile, a
    partial level 1 tile of 17 and a partial level 2 tile of 1."""
    size = 70_000
    assert [tiles.tile_width(size, 0, n) for n in (272, 273, 274)] == [256, 112, 0]
    assert [tiles.tile_width(size, 1, n) for n in (0, 1, 2)] == [256, 17, 0]
    assert [tiles.tile_width(size, 2, n) for n in (0, 1)] == [1, 0]
    assert tiles.tile_width(256, 1, 0) == 1


def test_proofs_from_tiles_equal_proofs_from_all_leaves() -> None:
    leaves = synthetic_leaves(70_000)
    stored = build_tiles(leaves)
    reads: list[tuple[int, int]] = []

    def read(level: int, start: int, end: int) -> list[bytes]:
        reads.append((level, start // 256))
        tile = stored[(level, start // 256)]
        return tile[start % 256 : start % 256 + end - start]

    rng = random.Random(7)
    for size in (1, 2, 255, 256, 257, 65_535, 65_536, 65_537, 70_000, rng.randrange(1, 70_000)):
        reference = merkle.range_hasher(leaves[:size])
        from_tiles = tiles.tile_range_hash(read)
        assert from_tiles(0, size) == reference(0, size)
        for index in {0, size - 1, rng.randrange(size)}:
            reads.clear()
            path = merkle.inclusion_path(index, size, tiles.tile_range_hash(read))
            assert path == merkle.inclusion_path(index, size, reference)
            assert len(set(reads)) <= 3 * 3  # a few tiles per level, never the leaves
        old = rng.randrange(1, size + 1)
        assert merkle.consistency_path(old, size, from_tiles) == merkle.consistency_path(
            old, size, reference
        )


def test_the_tile_builder_matches_the_brute_force_tiles() -> None:
    leaves = synthetic_leaves(66_048)  # 258 level-0 tiles: level 2 gets its first hash
    full: dict[tuple[int, int], list[bytes]] = {}
    builder = tiles.TileBuilder([], [], lambda lv, n, h: full.__setitem__((lv, n), h))
    builder.push_leaves(leaves[:512])
    builder.push_leaves(leaves[512:])
    expected = build_tiles(leaves)
    assert full == {k: v for k, v in expected.items() if k[0] >= 1 and len(v) == 256}
    assert builder.pending[0] == expected[(1, 1)]
    assert builder.pending[1] == expected[(2, 0)]


# --- Stored tiles and the HTTP tiles -----------------------------------------------------------


def append(n: int) -> None:
    with transaction.atomic():
        for i in range(n):
            api.record_disclosure(
                app_id=1 + i % 3, actor_id=10 + i, endpoint="/v1/me", released=[(10 + i, NAME)]
            )


def stored_leaves() -> list[bytes]:
    return tilestore.leaf_hashes(0, api.ledger_size())


@pytest.mark.django_db
def test_proofs_read_tiles_and_verify_across_tile_boundaries() -> None:
    append(600)
    sth = api.latest_signed_tree_head()
    assert tilestore.tiles_upto() == 0  # derived lazily, on the first proof
    for index in (0, 255, 256, 511, 512, 599):
        assert api.inclusion_proof(index).verify()
    assert tilestore.tiles_upto() == 512
    assert LedgerTile.objects.get(level=1, number=0).hashes == b"".join(
        tiles.perfect_root(stored_leaves()[i : i + 256]) for i in (0, 256)
    )
    old = api.inclusion_proof(3, tree_size=300).sth
    assert merkle.verify_consistency(
        300, 600, old.root_hash, sth.root_hash, api.consistency_proof(300, 600)
    )
    append(100)
    new = api.latest_signed_tree_head()
    assert merkle.verify_consistency(
        600, 700, sth.root_hash, new.root_hash, api.consistency_proof(600, 700)
    )
    assert tilestore.tiles_upto() == 512  # no tile completed in between
    assert api.verify_ledger().ok


@pytest.mark.django_db
def test_http_tiles_rebuild_the_checkpoint_root(client: Client) -> None:
    append(300)
    response = client.get("/ledger/tile/0/000")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert "immutable" in response["Cache-Control"]
    assert len(response.content) == 8192
    partial = client.get("/ledger/tile/0/001.p/44")
    assert len(partial.content) == 44 * 32
    level1 = client.get("/ledger/tile/1/000.p/1")
    assert level1.content == tiles.perfect_root(tiles.split_hashes(response.content))
    # A tlog-tiles client: MTH from the level-1 hash and the partial level-0 tile.
    right = tiles.split_hashes(partial.content)
    root = merkle.node_hash(level1.content, merkle.root_from_leaf_hashes(right))
    assert root == api.latest_signed_tree_head().root_hash
    for missing in ("0/001", "0/001.p/45", "1/000", "2/000.p/1", "0/01", "entries/000"):
        answer = client.get(f"/ledger/tile/{missing}")
        assert answer.status_code == 404, missing


@pytest.mark.django_db
def test_verify_names_a_tampered_tile() -> None:
    append(256)
    assert tilestore.catch_up_tiles() == 256
    assert api.verify_ledger().ok
    table = connection.ops.quote_name(LedgerTile._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET hashes = %s", [bytes(32)])
    report = api.verify_ledger()
    assert not report.ok
    assert "ledger tile 1/0" in (report.problem or "")
