"""A ledger entry's inclusion proof as a small self-contained JSON file, checked offline.

The file carries everything a verifier needs except trust: the entry's contents (so the
leaf hash is recomputed, not believed), the person and fields it is about, the RFC 6962
section 2.1.1 audit path, and the signed tree head it leads to. `verify_proof_file()`
needs only the file and the ledger's Ed25519 public key (`consentry ledger head` prints
it); no database. `consentry ledger verify-proof FILE` runs it.

What a passing check proves: the operator signed a tree head that commits to this exact
entry -- this app, this acting person, this time, these fields about this person -- so it
cannot later remove or alter the entry without its signed heads contradicting each other.
The entry's subject list names other people only by internal numbers, never by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from consentry.grants.permissions import mask_to_fields
from consentry.ledger import merkle, records, signing
from consentry.ledger.api import InclusionProof, LedgerEntry

FORMAT = "consentry-inclusion-proof/1"


def proof_document(entry: LedgerEntry, proof: InclusionProof, subject_id: int) -> dict[str, Any]:
    """The JSON-ready proof that `entry` (about `subject_id`) is in the signed ledger."""
    rel = records.normalize(entry.released)
    mask = dict(entry.released).get(subject_id, 0)
    return {
        "format": FORMAT,
        "about": {"subject": subject_id, "fields": mask_to_fields(mask)},
        "entry": {
            "index": entry.index,
            "created_at": entry.created_at.isoformat(),
            "created_at_micros": records.micros(entry.created_at),
            "app": entry.app_id,
            "acting_person": entry.actor_id,
            "token": entry.token_id,
            "endpoint": entry.endpoint,
            "subject_count": len(rel),
            "subjects_hex": records.pack_subjects(rel).hex(),
        },
        "leaf_hash": entry.leaf_hash.hex(),
        "tree_size": proof.tree_size,
        "audit_path": [h.hex() for h in proof.audit_path],
        "signed_tree_head": {
            "tree_size": proof.sth.tree_size,
            "timestamp_ms": proof.sth.timestamp_ms,
            "root_hash": bytes(proof.sth.root_hash).hex(),
            "signature": bytes(proof.sth.signature).hex(),
        },
    }


def proof_json(entry: LedgerEntry, proof: InclusionProof, subject_id: int) -> bytes:
    return json.dumps(proof_document(entry, proof, subject_id), indent=2).encode() + b"\n"


@dataclass(frozen=True)
class ProofCheck:
    ok: bool
    message: str


def verify_proof_file(raw: bytes, public_key_pem: bytes) -> ProofCheck:
    """Check a proof file offline (module docstring): the entry's leaf hash, that it
    names the subject with those fields, the audit path to the root, and the tree head's
    signature under `public_key_pem`."""
    try:
        doc = json.loads(raw)
        if doc.get("format") != FORMAT:
            return ProofCheck(False, "not a Consentry inclusion proof (unknown format)")
        entry = doc["entry"]
        subjects = bytes.fromhex(entry["subjects_hex"])
        rel = records.unpack_subjects(subjects)
        leaf = records.record_leaf_hash(
            index=int(entry["index"]),
            created_at=records.from_micros(int(entry["created_at_micros"])),
            app_id=int(entry["app"]),
            actor_id=int(entry["acting_person"]),
            token_id=None if entry["token"] is None else int(entry["token"]),
            endpoint=str(entry["endpoint"]),
            subject_count=int(entry["subject_count"]),
            subjects=subjects,
        )
        about = doc["about"]
        sth_doc = doc["signed_tree_head"]
        sth = signing.SignedTreeHead(
            tree_size=int(sth_doc["tree_size"]),
            timestamp_ms=int(sth_doc["timestamp_ms"]),
            root_hash=bytes.fromhex(sth_doc["root_hash"]),
            signature=bytes.fromhex(sth_doc["signature"]),
        )
        path = [bytes.fromhex(h) for h in doc["audit_path"]]
        tree_size = int(doc["tree_size"])
        claimed_leaf = bytes.fromhex(doc["leaf_hash"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return ProofCheck(False, f"malformed proof file: {exc.__class__.__name__}")
    if leaf != claimed_leaf:
        return ProofCheck(False, "the entry's contents do not match its leaf hash")
    pairs = dict(rel.pairs())
    if mask_to_fields(pairs.get(int(about["subject"]), 0)) != list(about["fields"]):
        return ProofCheck(False, "the entry does not release those fields about that person")
    if sth.tree_size != tree_size:
        return ProofCheck(False, "the signed tree head is for another tree size")
    if not merkle.verify_inclusion(leaf, int(entry["index"]), tree_size, path, sth.root_hash):
        return ProofCheck(False, "the audit path does not lead to the signed root hash")
    try:
        signed = signing.verify_tree_head(sth, public_key_pem)
    except (ValueError, TypeError):
        return ProofCheck(False, "the public key is not an Ed25519 public key")
    if not signed:
        return ProofCheck(False, "the tree head's signature is not the ledger's")
    return ProofCheck(
        True,
        f"OK: entry {entry['index']} ({', '.join(about['fields']) or 'no fields'} about person "
        f"{about['subject']}) is in the ledger of {tree_size} entries signed at "
        f"{sth.timestamp_ms} ms",
    )
