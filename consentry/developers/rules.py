"""Rules of the developer platform, as pure functions over plain values (no Django, no
database): recertification stages, callback retry schedule, callback signatures, and
which permissions review leaves an app with.

Signatures follow the shape GitHub and Stripe webhooks use: the sender puts a Unix
timestamp and an HMAC-SHA256 over "timestamp.body" (keyed with the app's client secret)
in one header; the receiver recomputes it, compares in constant time and refuses a
timestamp older (or newer) than a tolerance, so a captured request cannot be replayed
later.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from consentry.grants.permissions import PERMISSIONS

SIGNATURE_HEADER = "Consentry-Signature"
SIGNATURE_TOLERANCE = timedelta(minutes=5)

RECERTIFY_EVERY = timedelta(days=365)
REMINDER_DAYS: tuple[int, ...] = (30, 7)

RETRY_FIRST_DELAY = timedelta(minutes=1)
RETRY_WINDOW = timedelta(days=3)

APP_UNUSED_AFTER = timedelta(days=90)
SECRET_GRACE_MAX = timedelta(hours=24)


# --- callback signatures ------------------------------------------------------------


def signed_payload(timestamp: int, body: bytes) -> bytes:
    """What the HMAC covers: the decimal timestamp, a dot, then the exact body bytes."""
    return str(timestamp).encode() + b"." + body


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of signed_payload() under the app's client secret."""
    return hmac.new(secret.encode(), signed_payload(timestamp, body), hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The `Consentry-Signature` header value: `t=<unix seconds>,v1=<hex hmac>`."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


class SignatureError(ValueError):
    """The signature header is missing, malformed, wrong, or its timestamp is stale."""


def verify_signature(
    secrets: Iterable[str],
    header: str,
    body: bytes,
    now: int,
    tolerance: timedelta = SIGNATURE_TOLERANCE,
) -> int:
    """Check a `Consentry-Signature` header against any of `secrets` (the current client
    secret and, during a rotation's grace period, the previous one). Returns the signed
    timestamp; raises SignatureError otherwise. `now` is Unix seconds."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError, IndexError):
        raise SignatureError("no timestamp in the signature header") from None
    if abs(now - timestamp) > tolerance.total_seconds():
        raise SignatureError("the signature timestamp is outside the tolerance")
    candidates = fields.get("v1", [])
    for secret in secrets:
        expected = sign(secret, timestamp, body)
        if any(hmac.compare_digest(expected, c) for c in candidates):
            return timestamp
    raise SignatureError("the signature does not match")


# --- callback retries -----------------------------------------------------------------


def next_attempt_at(first_attempt_at: datetime, attempts: int, now: datetime) -> datetime | None:
    """When to try a failed callback again after `attempts` failed attempts: 1 minute,
    then doubling (1, 2, 4, 8 ... minutes after each failure), for at most 3 days after the
    first attempt. None once the next try would fall outside those 3 days: give up."""
    delay = RETRY_FIRST_DELAY * (2 ** max(attempts - 1, 0))
    when = now + delay
    if when - first_attempt_at > RETRY_WINDOW:
        return None
    return when


# --- recertification ------------------------------------------------------------------


class CertStage(enum.Enum):
    CURRENT = "current"
    REMIND_30 = "remind_30"
    REMIND_7 = "remind_7"
    LAPSED = "lapsed"


def recertify_by(certified_at: datetime) -> datetime:
    return certified_at + RECERTIFY_EVERY


def certification_stage(certified_at: datetime, now: datetime) -> CertStage:
    """Where a live app stands in its annual recertification: 30 and 7 days before the
    year is up it is reminded, after it its reviewed permissions lapse."""
    left = recertify_by(certified_at) - now
    if left <= timedelta(0):
        return CertStage.LAPSED
    if left <= timedelta(days=7):
        return CertStage.REMIND_7
    if left <= timedelta(days=30):
        return CertStage.REMIND_30
    return CertStage.CURRENT


def recertification_needs_attention(
    certified_at: datetime | None, lapsed: bool, now: datetime
) -> bool:
    """Whether the console should flag the app: lapsed, or within 30 days of lapsing."""
    if lapsed:
        return True
    return (
        certified_at is not None and certification_stage(certified_at, now) is not CertStage.CURRENT
    )


def reminder_due(stage: CertStage, last_reminder_days: int | None) -> int | None:
    """The reminder (30 or 7, in days) to send now, or None when none is due or the same
    one was already sent. A reminder is sent once per stage per certification year."""
    days = {CertStage.REMIND_30: 30, CertStage.REMIND_7: 7}.get(stage)
    if days is None:
        return None
    if last_reminder_days is not None and last_reminder_days <= days:
        return None
    return days


# --- review ---------------------------------------------------------------------------


def reviewed_permissions(statuses: Mapping[str, str], lapsed: bool) -> list[str]:
    """The review-needed permissions an app may use (`Application.approved_permissions`):
    those staff approved, unless its certification lapsed (then none; basic login keeps
    working since basic permissions need no review)."""
    if lapsed:
        return []
    return sorted(
        p
        for p, status in statuses.items()
        if status == "approved" and p in PERMISSIONS and PERMISSIONS[p].review
    )


def needs_review(permission: str) -> bool:
    return PERMISSIONS[permission].review


def needs_agreement(permission: str) -> bool:
    return PERMISSIONS[permission].agreement
