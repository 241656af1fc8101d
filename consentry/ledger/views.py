"""The ledger published for auditors and witnesses (c2sp.org/tlog-tiles "APIs"):

    /ledger/checkpoint            the latest signed tree head as a signed checkpoint
    /ledger/tile/<L>/<N>[.p/<W>]  Merkle tree tiles (level 0: leaf hashes)
    /ledger/vkey                  the verifier key of the checkpoint signature (then
                                  those of retired keys, one per line)

Entry bundles (/ledger/tile/entries/...) are not served: a call record names the people
an app read about, which is theirs to see (the privacy center), not the public's. Leaf
hashes reveal nothing without the record.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from consentry.ledger import checkpoint, tiles, tilestore
from consentry.ledger.api import latest_signed_tree_head

_TEXT = "text/plain; charset=utf-8"


def _not_found() -> HttpResponse:
    return HttpResponse("not found\n", status=404, content_type=_TEXT)


@require_GET
def checkpoint_view(request: HttpRequest) -> HttpResponse:
    sth = latest_signed_tree_head()
    response = HttpResponse(
        checkpoint.signed_checkpoint(sth.tree_size, sth.root_hash), content_type=_TEXT
    )
    # Mutable: "SHOULD prevent caching beyond a few seconds" (tlog-tiles "Checkpoints").
    response["Cache-Control"] = "public, max-age=2"
    return response


@require_GET
def vkey_view(request: HttpRequest) -> HttpResponse:
    # The current key first, then retired ones (their old checkpoints still verify).
    lines = [checkpoint.vkey(), *checkpoint.retired_vkeys()]
    return HttpResponse("".join(line + "\n" for line in lines), content_type=_TEXT)


@require_GET
def tile_view(request: HttpRequest, path: str) -> HttpResponse:
    parsed = tiles.parse_tile_path(path)
    if parsed is None:
        return _not_found()
    level, number, width = parsed
    data = tilestore.read_tile(level, number, width)
    if data is None:
        return _not_found()
    response = HttpResponse(data, content_type="application/octet-stream")
    # Immutable once it exists (tlog-tiles "Merkle Tree").
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
