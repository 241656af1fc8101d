"""The data-use agreement a developer signs before an app may ask for `user_likes` or
`user_posts` (docs/rules.md "Permissions"). Versioned text: a new version is a new entry here,
never an edit of an old one, because signatures name the version and hash its text."""

from __future__ import annotations

import hashlib

CURRENT_VERSION = "2026-1"

TEXTS: dict[str, str] = {
    "2026-1": """Consentry data-use agreement, version 2026-1

Between the operator of this Consentry site and the developer signing below, for the
app named below.

1. The app uses the data it receives only for the purposes it declared for each
   permission, and keeps it no longer than the retention period it declared.
2. The app does not sell, rent or share the data, and does not use it to build profiles
   of people who did not use the app.
3. When a person removes the app or asks for deletion, the app deletes their data and
   confirms it through the signed data-deletion callback.
4. The operator may audit the app, suspend it, or ban it for a breach, and may tell
   every affected person what the app received.
5. The app re-confirms its purposes and this agreement every twelve months.
""",
}


def signed_text(version: str, app_name: str, client_id: str, signer_name: str) -> str:
    """Exactly what a signer signs: the agreement text plus the app and the signer."""
    return f"{TEXTS[version]}\nApp: {app_name}\nClient id: {client_id}\nSigned by: {signer_name}\n"


def text_hash(text: str) -> str:
    """SHA-256 (hex) of the UTF-8 bytes of the signed text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
