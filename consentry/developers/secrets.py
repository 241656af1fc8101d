"""Client secrets beyond django-oauth-toolkit's hashed column.

- Callbacks are signed with the app's client secret (HMAC-SHA256), so the platform needs
  the secret itself, not only its hash: it is kept encrypted (AES-256-GCM, key derived
  with HKDF from SECRET_KEY), never in plain.
- A rotated-out secret stays valid for the grace period the developer picked: its hash is
  kept in `PreviousClientSecret` until then, and the validator's client authentication
  accepts it (consentry.oauth.validators).
"""

from __future__ import annotations

import base64
import os
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.utils import timezone

from consentry.developers.models import AppProfile, PreviousClientSecret
from consentry.oauth.models import Application

_INFO = b"consentry app signing secrets v1"


def _key() -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        settings.SECRET_KEY.encode()
    )


def encrypt_secret(secret: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_key()).encrypt(nonce, secret.encode(), _INFO)
    return base64.b64encode(nonce + sealed).decode()


def decrypt_secret(stored: str) -> str:
    raw = base64.b64decode(stored)
    return AESGCM(_key()).decrypt(raw[:12], raw[12:], _INFO).decode()


def signing_secrets(application: Application, now: datetime | None = None) -> list[str]:
    """The secrets an app may sign its calls to us with: the current one first, then a
    rotated-out one still in its grace period. Empty when the app has none on record
    (created outside the console before this existed)."""
    now = now or timezone.now()
    found: list[str] = []
    profile = AppProfile.objects.filter(application=application).first()
    if profile is not None and profile.signing_secret:
        found.append(decrypt_secret(profile.signing_secret))
    for previous in PreviousClientSecret.objects.filter(
        application=application, expires_at__gt=now
    ).order_by("-rotated_at"):
        if previous.signing_secret:
            found.append(decrypt_secret(previous.signing_secret))
    return found


def current_signing_secret(application: Application) -> str | None:
    profile = AppProfile.objects.filter(application=application).first()
    if profile is None or not profile.signing_secret:
        return None
    return decrypt_secret(profile.signing_secret)


def previous_secret_matches(client: Application, secret: str, now: datetime | None = None) -> bool:
    """Whether `secret` is a rotated-out secret of `client` still in its grace period."""
    now = now or timezone.now()
    if not secret:
        return False
    return any(
        check_password(secret, stored)
        for stored in PreviousClientSecret.objects.filter(
            application=client, expires_at__gt=now
        ).values_list("secret_hash", flat=True)
    )
