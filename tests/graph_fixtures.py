"""Helpers for Graph API tests: call the API with a bearer token, read the ledger's
newest entry, and build small worlds directly in the database (for the property tests,
which run hundreds of worlds and cannot afford the browser-grade OAuth flow for each;
the endpoint tests get their tokens from tests/oauth_flow.py)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from consentry.grants.models import Consent, ConsentPermission
from consentry.grants.permissions import permissions_to_mask
from consentry.ledger.api import LedgerEntry, read_entry
from consentry.ledger.models import CallRecord
from consentry.oauth.models import AccessToken, Application


def get(client: Client, path: str, token: str | None, **params: Any) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return client.get(path, params, **headers)


def wait_for_fresh_minute(margin: float = 5.0) -> None:
    """Rate limits count in fixed minute windows: start well inside one, so that the
    requests a test counts fall in the same window."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.5)


def ledger_size() -> int:
    return CallRecord.objects.count()


def newest_entry() -> LedgerEntry:
    return read_entry(ledger_size() - 1)


def direct_app(
    status: str = "live",
    approved: Iterable[str] = (),
    agreement: bool = True,
    members: Iterable[int] = (),
    limits: dict[str, int] | None = None,
) -> Application:
    """An application row without the OAuth ceremony (no secret hashing: fast)."""
    app = Application.objects.create(
        name=f"direct {secrets.token_hex(4)}",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://app.example.test/callback",
        hash_client_secret=False,
        client_secret="",
        status=status,
        approved_permissions=sorted(set(approved)),
        agreement_signed_at=timezone.now() if agreement else None,
        limits=limits or {},
    )
    if members:
        app.members.add(*members)
    return app


def direct_consent(
    person_id: int,
    app: Application,
    permissions: Iterable[str],
    *,
    revoked_permissions: Iterable[str] = (),
    revoked: bool = False,
    expires_at: datetime | None = None,
    email_choice: str = "real",
) -> Consent:
    now = timezone.now()
    gone = set(revoked_permissions)
    consent = Consent.objects.create(
        person_id=person_id,
        application=app,
        expires_at=expires_at or now + timedelta(days=90),
        revoked_at=now if revoked else None,
        email_choice=email_choice,
        # Equal to the active rows below, as grants.actions keeps it.
        permission_mask=permissions_to_mask(set(permissions) - gone),
    )
    ConsentPermission.objects.bulk_create(
        [
            ConsentPermission(consent=consent, permission=p, revoked_at=now if p in gone else None)
            for p in sorted(set(permissions) | gone)
        ]
    )
    return consent


def direct_token(consent: Consent, scope: Iterable[str]) -> str:
    raw = secrets.token_urlsafe(30)
    AccessToken.objects.create(
        user_id=consent.person_id,
        application_id=consent.application_id,
        consent=consent,
        token=raw,
        scope=" ".join(sorted(set(scope))),
        expires=timezone.now() + timedelta(hours=1),
    )
    return raw
