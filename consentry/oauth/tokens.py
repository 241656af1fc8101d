"""Bearer token lookup for resource endpoints (the Graph API)."""

from __future__ import annotations

import hashlib

from oauth2_provider.models import get_access_token_model

from consentry.oauth.models import AccessToken


def access_token_for(raw: str) -> AccessToken | None:
    """The valid access token for a bearer string, or None (unknown, expired, revoked)."""
    if not raw or len(raw) > 512:
        return None
    checksum = hashlib.sha256(raw.encode()).hexdigest()
    model = get_access_token_model()
    token = (
        model.objects.select_related("application", "user").filter(token_checksum=checksum).first()
    )
    if token is None or token.is_expired():
        return None
    return token
