"""Bearer token lookup for resource endpoints (the Graph API, userinfo, introspection)."""

from __future__ import annotations

import hashlib

from django.utils import timezone

from consentry.oauth.models import AccessToken, Application, AppStatus
from consentry.people.models import Person

MAX_TOKEN_LENGTH = 512


def token_checksum(raw: str) -> str:
    """What is stored for a token: its SHA-256, never the token (RFC 9700 section 4)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def access_token_for(raw: str) -> AccessToken | None:
    """The valid access token for a bearer string, or None.

    None for unknown, expired or revoked tokens, tokens of a suspended or banned app, and
    tokens whose consent is revoked or expired (SPEC.md rule 2). One indexed query, with
    `application`, `user` and `consent` joined in. The token's `scope` never exceeds the
    consent's active permissions: consentry.grants.actions narrows or deletes tokens in the
    same transaction that narrows or revokes the consent.

    A deactivated person's token, and a development-mode app's token held by someone who
    lost their role on it, are refused too (token_holder_may_act).
    """
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return None
    now = timezone.now()
    token = (
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
    if token is None or not token_holder_may_act(token.application, token.user):
        return None
    return token


def token_holder_may_act(application: Application, person: Person | None) -> bool:
    """Whether `application` may still act for `person` with a token or code it holds:
    the person's account is active, and the app is live or in development with the
    person holding a role on it (SPEC.md rule 1, consentry.graph.release.app_usable).

    The one check every token use shares: access_token_for() (the Graph API, userinfo,
    introspection), refresh-token validation and the code exchange
    (consentry.oauth.validators)."""
    if person is None or not person.is_active:
        return False
    return application.is_usable_by(person.pk)
