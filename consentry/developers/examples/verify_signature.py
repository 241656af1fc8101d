"""Verify a Consentry callback, and sign your deletion confirmation (standard library only)."""

import hashlib
import hmac
import json
import time

TOLERANCE_SECONDS = 300  # refuse anything signed more than 5 minutes away from now


def verify_consentry_signature(
    client_secret: str, header: str, body: bytes, now: float | None = None
) -> bool:
    """True when the Consentry-Signature `header` signs the raw request `body` (bytes)
    with your client secret and its timestamp is fresh; False otherwise."""
    fields = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return False  # stale: a replay of an old request
    signed = str(timestamp).encode() + b"." + body
    expected = hmac.new(client_secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


def deletion_confirmation(
    client_id: str, client_secret: str, confirmation_code: str, now: float | None = None
) -> tuple[dict[str, str], bytes]:
    """Headers and body to POST to the `confirm_url` once the person's data is deleted."""
    body = json.dumps({"confirmation_code": confirmation_code}).encode()
    timestamp = int(time.time() if now is None else now)
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(client_secret.encode(), signed, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "Consentry-Client-Id": client_id,
        "Consentry-Signature": f"t={timestamp},v1={digest}",
    }
    return headers, body
