"""The OpenID Connect signing key (RS256 ID tokens, published at the JWKS endpoint).

Generated once into the var folder (mode 0600, consentry.config.read_or_create_secret)
unless CONSENTRY_OIDC_RSA_PRIVATE_KEY provides one.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def new_rsa_private_key() -> str:
    """A fresh 2048-bit RSA key as unencrypted PKCS#8 PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
