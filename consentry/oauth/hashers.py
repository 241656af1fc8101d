"""How client secrets are stored: a fast salted hash, because they are machine secrets.

A person's password is low-entropy and guessable, so it gets argon2 (settings
PASSWORD_HASHERS[0]): slow on purpose, against offline guessing. A client secret is 128
random characters from django-oauth-toolkit's generator (more than 700 bits): nobody
can guess it offline whatever the hash, so a memory-hard hash only costs every token
request and introspection call 100 MiB and a sixth of a second (issue "Performance").
django-oauth-toolkit hashes client secrets with CLIENT_SECRET_HASHER; Consentry's is this
one, HMAC-SHA256 keyed with a per-secret random salt, compared in constant time.

Secrets hashed before this (argon2) keep working and are rewritten with this hasher the
next time the app authenticates successfully (ConsentryValidator._check_secret).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare

ALGORITHM = "client_hmac_sha256"


class ClientSecretHasher(BasePasswordHasher):
    """`client_hmac_sha256$<salt>$<hex HMAC-SHA256(key=salt, secret)>`; for high-entropy
    machine-generated client secrets only, never for people's passwords."""

    algorithm = ALGORITHM

    def encode(self, password: str, salt: str) -> str:
        if password is None or not salt or "$" in salt:
            raise ValueError("a client secret and a salt without '$' are needed")
        digest = hmac.new(salt.encode(), password.encode(), hashlib.sha256).hexdigest()
        return f"{self.algorithm}${salt}${digest}"

    def decode(self, encoded: str) -> dict[str, Any]:
        algorithm, salt, digest = encoded.split("$", 2)
        assert algorithm == self.algorithm
        return {"algorithm": algorithm, "hash": digest, "salt": salt}

    def verify(self, password: str, encoded: str) -> bool:
        decoded = self.decode(encoded)
        return constant_time_compare(encoded, self.encode(password, decoded["salt"]))

    def safe_summary(self, encoded: str) -> dict[Any, Any]:
        decoded = self.decode(encoded)
        return {
            "algorithm": decoded["algorithm"],
            "salt": mask_hash(decoded["salt"], show=2),
            "hash": mask_hash(decoded["hash"]),
        }

    def harden_runtime(self, password: str, encoded: str) -> None:
        return None  # one fast hash whatever the stored value: nothing to even out
