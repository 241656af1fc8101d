"""The oauthlib server behind every endpoint, cut down to OAuth 2.1.

oauthlib's all-in-one OpenID Connect server also speaks the implicit, hybrid, password,
client-credentials and device grants, and PKCE `plain` (and treats a missing
`code_challenge_method` as `plain`, RFC 7636 4.3). OAuth 2.1 and RFC 9700 2.1.1 / 2.4 keep
only the authorization code grant with S256 PKCE and refresh tokens, so those are the only
ones this server routes to; anything else is `unsupported_response_type` /
`unsupported_grant_type` / `invalid_request` before any application code runs.
"""

from __future__ import annotations

from typing import Any

from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256
from oauthlib.openid import Server as OpenIDServer

S256_ONLY = {"S256": code_challenge_method_s256}


class Server(OpenIDServer):
    """oauthlib's OpenID Connect server limited to `response_type=code` and the
    `authorization_code` and `refresh_token` grants, PKCE S256 only."""

    def __init__(self, request_validator: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(request_validator, *args, **kwargs)
        # Instance attributes shadow oauthlib's class-level table of methods.
        self.auth_grant._code_challenge_methods = S256_ONLY
        self.openid_connect_auth.proxy_target._code_challenge_methods = S256_ONLY
        self._response_types = {"code": self.auth_grant_choice}
        self._grant_types = {
            "authorization_code": self.token_grant_choice,
            "refresh_token": self.refresh_grant,
        }
