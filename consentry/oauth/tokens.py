"""Bearer token lookup for resource endpoints (the Graph API, userinfo, introspection)."""

from __future__ import annotations

import hashlib

from django.utils import timezone

from consentry.oauth.models import AccessToken, AppStatus

MAX_TOKEN_LENGTH = 512


def token_checksum(raw: str) -> str:
    """What is stored for a token: its SHA-256, never the token (RFC 9700 section 4)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def access_token_for(raw: str) -> AccessToken | None:
    """The valid access token for a bearer string, or None.

    None for unknown, expired or revoked tokens, tokens of a suspended or banned app, and
    tokens whose consent is revoked or expired (docs/rules.md rule 2). One indexed query, with
    `application`, `user` and `consent` joined in. The token's `scope` never exceeds the
    consent's active permissions: consentry.grants.actions narrows or deletes tokens in the
    same transaction that narrows or revokes the consent.

    Whether a development-mode app may act for this person (membership, rule 1) is not
    checked here; the token could only be issued to a member, and the release rule
    re-checks it.
    """
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return None
    now = timezone.now()
    return (
        AccessToken.objects.select_related("application", "user", "consent")
        .filter(
            token_checksum=token_checksum(raw),
            expires__gt=now,
            consent__revoked_at__isnull=True,
            consent__expires_at__gt=now,
            application__status__in=(AppStatus.LIVE, AppStatus.DEVELOPMENT),
        )
        .first()
    )
