"""Writes to OAuth clients (apps)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret

from consentry.config import is_loopback
from consentry.grants.permissions import PERMISSIONS
from consentry.oauth.models import Application, AppStatus


def check_redirect_uri(uri: str) -> None:
    """Refuse a redirect URI that is not absolute HTTPS without a fragment (RFC 9700
    section 2.1), except plain HTTP on a loopback address, which RFC 8252 section 7.3
    allows for apps running on the developer's or the person's own machine."""
    parts = urlsplit(uri)
    secure = parts.scheme == "https" or (
        parts.scheme == "http" and is_loopback(parts.hostname or "")
    )
    if not secure or not parts.hostname or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"redirect URI {uri!r} must be an absolute https URI (or http on a loopback "
            "address), without user info or a fragment"
        )


def do_create_application(
    *,
    name: str,
    redirect_uris: Sequence[str],
    approved_permissions: Sequence[str] = (),
    purposes: dict[str, str] | None = None,
    live: bool = False,
    agreement_signed: bool = False,
    description: str = "",
    icon_url: str = "",
) -> tuple[Application, str]:
    """Register a confidential client for the authorization code flow with RS256 ID
    tokens. Returns the app and its client secret: the only time the secret exists in
    plain, since it is stored hashed. Raises ValueError for unknown permissions or a
    redirect URI check_redirect_uri() refuses."""
    unknown = set(approved_permissions) - PERMISSIONS.keys()
    unknown |= set(purposes or {}) - PERMISSIONS.keys()
    if unknown:
        raise ValueError(f"unknown permissions: {', '.join(sorted(unknown))}")
    for uri in redirect_uris:
        check_redirect_uri(uri)
    secret = generate_client_secret()
    # Not durable: the developer console creates the app inside its own transaction
    # together with its roles and profile (consentry.developers.actions).
    with transaction.atomic():
        app = Application.objects.create(
            name=name,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=" ".join(redirect_uris),
            post_logout_redirect_uris=" ".join(redirect_uris),
            client_secret=secret,
            algorithm=Application.RS256_ALGORITHM,
            status=AppStatus.LIVE if live else AppStatus.DEVELOPMENT,
            approved_permissions=sorted(set(approved_permissions)),
            purposes=purposes or {},
            agreement_signed_at=timezone.now() if agreement_signed else None,
            description=description,
            icon_url=icon_url,
        )
    return app, secret
