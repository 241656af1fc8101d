"""Download my data (GDPR Art. 15 and 20): a ZIP of JSON files about one person.

profile.json (fields, audiences, friend-sharing opt-ins), friends.json (names only),
posts.json, grants.json (every grant with its permission history, closed routes, opt-in
history, deletion requests), ledger/entries.json (every ledger entry about the person)
and ledger/proofs/<index>.json (each entry's inclusion proof, checkable offline with
`consentry ledger verify-proof`), notices.json.
"""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from collections.abc import Callable
from typing import Any

from consentry.grants.models import ClosedRoute, Consent, FriendShareOptIn
from consentry.grants.permissions import mask_to_fields
from consentry.ledger.api import inclusion_proof, latest_signed_tree_head, read_entry
from consentry.ledger.proof_file import proof_document
from consentry.people.fields import PROFILE_FIELDS
from consentry.people.models import Friendship, Person, Post
from consentry.privacy.history import entry_indexes_about
from consentry.privacy.models import DeletionRequest


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).encode() + b"\n"


def _profile(person: Person) -> dict[str, Any]:
    return {
        "fields": {name: getattr(person, name) for name in PROFILE_FIELDS if name != "posts"},
        "audiences": {name: person.audience(name).value for name in PROFILE_FIELDS},
        "friends_may_bring_into_apps": [
            name for name in PROFILE_FIELDS if person.shares_with_friends_apps(name)
        ],
        "language": person.language,
        "date_joined": person.date_joined,
    }


def _grants(person: Person) -> dict[str, Any]:
    consents = Consent.objects.filter(person=person).select_related("application")
    return {
        "grants": [
            {
                "app": c.application.name,
                "app_id": c.application_id,
                "created_at": c.created_at,
                "last_used_at": c.last_used_at,
                "expires_at": c.expires_at,
                "revoked_at": c.revoked_at,
                "email_choice": c.email_choice,
                "permissions": [
                    {
                        "permission": p.permission,
                        "granted_at": p.granted_at,
                        "purpose_shown": p.purpose_shown,
                        "revoked_at": p.revoked_at,
                    }
                    for p in c.permissions.order_by("granted_at", "permission")
                ],
            }
            for c in consents.order_by("created_at")
        ],
        "closed_routes": [
            {"friend": r["through__name"], "closed_at": r["closed_at"]}
            for r in ClosedRoute.objects.filter(person=person).values("through__name", "closed_at")
        ],
        "friend_sharing_history": list(
            FriendShareOptIn.objects.filter(person=person)
            .order_by("changed_at")
            .values("field", "enabled", "changed_at")
        ),
        "deletion_requests": list(
            DeletionRequest.objects.filter(person=person).values(
                "app_name", "code", "status", "created_at"
            )
        ),
    }


def _notices(person: Person) -> list[Any]:
    try:
        from consentry.notices.models import Notice
    except ImportError:  # pragma: no cover - the notices app ships with Foundations
        return []
    return list(
        Notice.objects.filter(person=person)
        .order_by("created_at")
        .values("kind", "title", "body", "created_at", "read_at")
    )


def build_archive(person: Person, progress: Callable[[int], None]) -> bytes:
    """The ZIP for `person`; calls `progress(percent)` as it goes (the proofs are most of
    the work)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("profile.json", _json(_profile(person)))
        friends = (
            Friendship.objects.filter(person=person)
            .order_by("friend__name")
            .values_list("friend__name", flat=True)
        )
        archive.writestr("friends.json", _json([{"name": name} for name in friends]))
        posts = Post.objects.filter(author=person).order_by("created_at")
        archive.writestr(
            "posts.json",
            _json(list(posts.values("created_at", "message", "audience"))),
        )
        archive.writestr("grants.json", _json(_grants(person)))
        archive.writestr("notices.json", _json(_notices(person)))
        progress(5)
        indexes = entry_indexes_about(person.pk)
        tree_size = latest_signed_tree_head().tree_size
        entries = []
        for n, index in enumerate(indexes, start=1):
            entry = read_entry(index)
            mask = dict(entry.released).get(person.pk, 0)
            entries.append(
                {
                    "index": index,
                    "created_at": entry.created_at,
                    "app_id": entry.app_id,
                    "through": "you" if entry.actor_id == person.pk else "a friend",
                    "acting_person": entry.actor_id,
                    "fields": mask_to_fields(mask),
                    "endpoint": entry.endpoint,
                    "proof": f"ledger/proofs/{index}.json",
                }
            )
            document = proof_document(entry, inclusion_proof(index, tree_size), person.pk)
            archive.writestr(f"ledger/proofs/{index}.json", _json(document))
            if n % 50 == 0:
                progress(5 + 90 * n // len(indexes))
        archive.writestr("ledger/entries.json", _json(entries))
        archive.writestr(
            "README.txt",
            (
                b"Your data from Consentry. Each file is JSON. ledger/entries.json lists every "
                b"time an app received data about you; ledger/proofs/ holds a proof for each, "
                b"which `consentry ledger verify-proof FILE` checks against the ledger's public "
                b"key.\n"
            ),
        )
    progress(99)
    return buffer.getvalue()


def new_file_name() -> str:
    return f"export-{secrets.token_urlsafe(24)}.zip"
