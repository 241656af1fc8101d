"""The request validator: where OAuth decisions meet Consentry's rules.

django-oauth-toolkit's validator with these changes:
- scopes: only the permissions of the catalogue, review-needed ones only once staff
  approved them for the app, agreement ones only after the agreement is signed, and only
  for a person the app may serve (live, or development with the person as member; never
  suspended or banned) (docs/rules.md rule 1);
- authorization codes are stored as SHA-256 and kept after use, so a replayed code fails
  and revokes every token the first exchange produced (RFC 6749 4.1.2, RFC 9700 4.5);
- every access and refresh token is tied to the person's Consent and never carries more
  than its active permissions; refresh fails once the consent is revoked or expired;
- `sub` and every other person id are pairwise per app (OpenID Connect Core 8.1), the
  `email` claim is the real address or a per-app relay address, as the person chose;
- client authentication failures are throttled per (client id, source address) with
  growing delays (consentry.oauth.throttle), never by refusing a correct secret.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from django.conf import settings
from django.contrib.auth.hashers import identify_hasher, make_password
from django.db import connection, transaction
from django.utils import timezone
from oauth2_provider import cimd
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.openid.connect.core.exceptions import RequestNotSupported, RequestURINotSupported

from consentry.developers.secrets import previous_secret_matches
from consentry.grants.actions import active_permissions, consent_for, do_record_consent_use
from consentry.grants.models import Consent
from consentry.grants.permissions import PERMISSIONS, fields_to_mask, unknown_permissions
from consentry.graph.release import AppFacts, passed_review
from consentry.ledger.api import record_disclosure
from consentry.oauth import throttle
from consentry.oauth.hashers import ALGORITHM as CLIENT_SECRET_ALGORITHM
from consentry.oauth.hashers import ClientSecretHasher
from consentry.oauth.models import AccessToken, Application, Grant, RefreshToken
from consentry.oauth.pairwise import app_scoped_id
from consentry.oauth.tokens import access_token_for, token_checksum, token_holder_may_act


def code_hash(code: str) -> str:
    """What is stored for an authorization code: its SHA-256."""
    return hashlib.sha256(code.encode()).hexdigest()


def relay_address(application_id: int, person_id: int) -> str:
    """The per-app relay address: unique to this person and app, useless elsewhere."""
    host = urlsplit(settings.PUBLIC_URL).hostname or "localhost"
    return f"{app_scoped_id(application_id, person_id)}@relay.{host}"


def needs_upgrade(stored_secret: str) -> bool:
    """A client secret hashed with anything but CLIENT_SECRET_HASHER (the argon2 of
    earlier versions); a secret stored in plain on purpose (hash_client_secret=False)
    stays as it is."""
    if stored_secret.startswith(CLIENT_SECRET_ALGORITHM + "$"):
        return False
    try:
        identify_hasher(stored_secret)
    except ValueError:
        return False
    return True


def upgrade_client_secret(client: Application, secret: str) -> None:
    """Re-store a client secret that just verified with the fast client-secret hash
    (consentry.oauth.hashers); guarded, so a concurrent reset of the secret wins."""
    old = client.client_secret
    new = make_password(secret, hasher=ClientSecretHasher())
    if Application.objects.filter(pk=client.pk, client_secret=old).update(client_secret=new):
        client.client_secret = new


def disallowed_permissions(application: Application, scopes: set[str]) -> set[str]:
    """The requested permissions this app may not ask for: unknown ones, and those docs/rules.md
    rule 1 ("approved in review for the permission", plus the signed agreement where
    needed) refuses, decided by the release rule's own consentry.graph.release.passed_review."""
    facts = AppFacts.of(application)
    return {s for s in scopes if s not in PERMISSIONS or not passed_review(facts, s)}


CODE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # S256: BASE64URL(SHA-256), RFC 7636 4.2
MAX_NONCE = 255  # oauth2_provider Grant.nonce
MAX_STATE = 1024


def authorization_parameter_problem(
    code_challenge: str | None, nonce: str | None, state: str | None
) -> str | None:
    """Why an authorization request's PKCE challenge, nonce or state is refused."""
    if code_challenge is not None and not CODE_CHALLENGE.fullmatch(code_challenge):
        return "code_challenge must be 43 base64url characters (RFC 7636 4.2, S256)"
    if nonce is not None and len(nonce) > MAX_NONCE:
        return f"nonce longer than {MAX_NONCE} characters"
    if state is not None and len(state) > MAX_STATE:
        return f"state longer than {MAX_STATE} characters"
    return None


ENDPOINT_ID_TOKEN = "oidc:id_token"  # noqa: S105 (a ledger endpoint name)
ENDPOINT_USERINFO = "oidc:userinfo"
# Which released field each OpenID Connect claim carries (`email_verified` says something
# about the email, which is ledgered with it).
CLAIM_FIELD = {"sub": "id", "name": "name", "picture": "picture", "email": "email"}


def record_claims_disclosure(
    request: Request, claims: dict[str, Any], endpoint: str, token_id: int | None
) -> None:
    """Write one ledger call for the person claims that leave in an ID token or a
    userinfo answer. Must run inside the transaction that issues or answers."""
    fields = {CLAIM_FIELD[k] for k in claims if k in CLAIM_FIELD}
    person_id = request.user.pk
    record_disclosure(
        app_id=request.client.pk,
        actor_id=person_id,
        endpoint=endpoint,
        released=[(person_id, fields_to_mask(fields))] if fields else [],
        token_id=token_id,
    )


def _jti(signed: str) -> str | None:
    """The `jti` claim of a JWT this server has just signed (read, not verified)."""
    try:
        payload = signed.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    jti = claims.get("jti") if isinstance(claims, dict) else None
    return jti if isinstance(jti, str) else None


@functools.cache
def _application_sql() -> str:
    from django.db import connection

    q = connection.ops.quote_name
    return f"SELECT * FROM {q(Application._meta.db_table)} WHERE client_id = %s"  # noqa: S608


def _hold_consent(person_id: int, app_id: int) -> None:
    """Lock the (person, app) consent row against its revocation before the refresh token
    (PostgreSQL, KEY SHARE: what the new tokens' foreign keys take at commit anyway).
    Revocation locks the consent and then the tokens; a refresh that locked the token
    first and the consent at commit deadlocked against it, and PostgreSQL aborted one of
    the two (a person's revocation failed). SQLite has one writer: nothing to order."""
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(Consent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {table} WHERE person_id = %s AND application_id = %s "  # noqa: S608
            "FOR KEY SHARE",
            [person_id, app_id],
        )


class ConsentryValidator(OAuth2Validator):
    oidc_claim_scope = {
        "sub": "openid",
        "name": "profile",
        "picture": "profile",
        "email": "email",
        "email_verified": "email",
    }

    # --- client authentication (RFC 6749 2.3.1), throttled per (client, address) ------

    def _load_application(self, client_id: str, request: Request) -> Application | None:
        """django-oauth-toolkit's lookup, by a query the ORM need not compile: building the
        `get(client_id=...)` SQL cost more than running it, on every client authentication
        (issue "Performance"). A cached `request.client` and an unknown id (which may be a
        client metadata document) are left to django-oauth-toolkit."""
        if client_id and "\x00" in client_id:
            return None  # no client has one, and PostgreSQL cannot compare it (a 500)
        if request.client or not client_id:
            return super()._load_application(client_id, request)
        found = list(Application.objects.raw(_application_sql(), [client_id]))
        if len(found) != 1:
            return super()._load_application(client_id, request)
        client = cimd.refresh_if_stale(found[0], request=request)
        if not client.is_usable(request):
            return None
        request.client = client
        return client

    def authenticate_client(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        """Raises throttle.ClientAuthThrottled (429) while this client id is delayed for
        this source address; see consentry.oauth.throttle."""
        client_id = self._attempted_client_id(request)
        address = str(request.headers.get("REMOTE_ADDR", ""))
        failed_before = False
        if client_id:
            wait, failed_before = throttle.check(client_id, address)
            if wait is not None:
                raise throttle.ClientAuthThrottled(wait, request=request)
        self._secret_to_upgrade: str | None = None
        ok = bool(super().authenticate_client(request, *args, **kwargs))
        if not ok:
            ok = self._authenticate_with_rotated_secret(request)
        if ok and self._secret_to_upgrade is not None:
            upgrade_client_secret(request.client, self._secret_to_upgrade)
        if client_id and not ok:
            throttle.record_failure(client_id, address)
        elif client_id and failed_before:
            throttle.record_success(client_id, address)
        return ok

    def _authenticate_with_rotated_secret(self, request: Request) -> bool:
        """A secret rotated out in the developer console keeps authenticating its client
        until the grace period the developer chose ends (consentry.developers.secrets)."""
        client_id, secret = self._attempted_credentials(request)
        client = Application.objects.filter(client_id=client_id).first() if client_id else None
        if client is None or not client.is_usable(request):
            return False
        if not previous_secret_matches(client, secret):
            return False
        request.client = client
        return True

    def _attempted_credentials(self, request: Request) -> tuple[str, str]:
        auth = self._extract_basic_auth(request)
        if auth:
            try:
                decoded = base64.b64decode(auth).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return "", ""
            client_id, _sep, secret = decoded.partition(":")
            return unquote_plus(client_id)[:200], unquote_plus(secret)[:500]
        client_id = str(getattr(request, "client_id", "") or "")[:200]
        return client_id, str(getattr(request, "client_secret", "") or "")[:500]

    def _check_secret(self, provided_secret: str, stored_secret: str) -> bool:
        if stored_secret.startswith(CLIENT_SECRET_ALGORITHM + "$"):
            # Directly: it needs no entry in PASSWORD_HASHERS to verify.
            return ClientSecretHasher().verify(provided_secret, stored_secret)
        ok = bool(super()._check_secret(provided_secret, stored_secret))
        if ok and needs_upgrade(stored_secret):
            self._secret_to_upgrade = provided_secret
        return ok

    def _attempted_client_id(self, request: Request) -> str:
        auth = self._extract_basic_auth(request)
        if auth:
            try:
                decoded = base64.b64decode(auth).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return ""
            return unquote_plus(decoded.split(":", 1)[0])[:200]
        return str(getattr(request, "client_id", "") or "")[:200]

    # --- scopes and who may use the app (docs/rules.md rule 1) --------------------------------

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Application, request: Request, *a: Any
    ) -> bool:
        if not scopes or unknown_permissions(set(scopes)):
            return False
        # RFC 6749 3.3 lets the server ignore part of the requested scope: a permission
        # review has not allowed this app (docs/rules.md rule 1) is left out of the consent
        # screen and the grant; the token response's `scope` tells the app what it got.
        refused = disallowed_permissions(client, set(scopes))
        allowed = [s for s in scopes if s not in refused]
        if not allowed:
            return False
        request.scopes = allowed
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "pk", None) is not None:
            return client.is_usable_by(user.pk)
        return bool(client.is_usable(request))

    def is_pkce_required(self, client_id: str, request: Request) -> bool:
        """PKCE is always required (OAuth 2.1). oauthlib asks this once the client and
        redirect URI are known good, so malformed values refused here go back to the
        app as `invalid_request`: a code challenge outside RFC 7636 4.2 (43 characters
        of base64url for S256), and a nonce or state longer than the grant can hold."""
        problem = authorization_parameter_problem(
            getattr(request, "code_challenge", None),
            getattr(request, "nonce", None),
            getattr(request, "state", None),
        )
        if problem:
            raise errors.InvalidRequestError(description=problem, request=request)
        # Request objects (OpenID Connect Core 6) are not supported, and discovery says
        # so: refused, never silently ignored in favour of the plain parameters.
        # (Read from the query: oauthlib's `request.request` is Django's request.)
        if getattr(request, "response_type", None):
            asked = {name for name, _ in parse_qsl(request.uri_query, keep_blank_values=True)}
            if "request_uri" in asked:
                raise RequestURINotSupported(request=request)
            if "request" in asked:
                raise RequestNotSupported(request=request)
        if getattr(request, "response_type", None) and getattr(
            request, "using_default_redirect_uri", False
        ):
            # OpenID Connect Core 3.1.2.1 requires it, and the code exchange must repeat
            # it (RFC 6749 4.1.3), which confirm_redirect_uri checks.
            raise errors.InvalidRequestError(
                description="redirect_uri is required", request=request
            )
        return True

    # oauthlib asks these for `prompt=none`, but its request carries no session, so the
    # answer is given where the session is: ConsentView refuses with login_required or
    # consent_required (OpenID Connect Core 3.1.2.1) before anything is shown or issued.
    def validate_silent_login(self, request: Request) -> bool:
        return True

    def validate_silent_authorization(self, request: Request) -> bool:
        return True

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Application, request: Request, *a: Any
    ) -> bool:
        if grant_type not in ("authorization_code", "refresh_token"):
            return False
        return bool(super().validate_grant_type(client_id, grant_type, client, request, *a))

    # --- authorization codes: hashed at rest, single use, replay revokes ----------------

    def _create_authorization_code(
        self, request: Request, code: dict[str, str], expires: Any = None
    ) -> Grant:
        return super()._create_authorization_code(
            request, {"code": code_hash(code["code"])}, expires
        )

    def validate_code(
        self, client_id: str, code: str, client: Application, request: Request, *a: Any
    ) -> bool:
        grant = Grant.objects.filter(code=code_hash(code), application=client).first()
        if grant is None:
            return False
        # Claim the code atomically: of two concurrent exchanges only one wins.
        claimed = Grant.objects.filter(pk=grant.pk, used_at__isnull=True).update(
            used_at=timezone.now()
        )
        if not claimed:
            # Replay: the code was already exchanged, so whoever holds it now may have
            # stolen it. Revoke what the first exchange issued (RFC 6749 4.1.2).
            grant.refresh_from_db(fields=["token_family"])
            if grant.token_family:
                RefreshToken.revoke_family(grant.token_family)
            return False
        if grant.is_expired() or not token_holder_may_act(client, grant.user):
            return False
        consent = consent_for(grant.user_id, client.pk)
        if not active_permissions(consent) >= set(grant.scope.split()):
            return False
        request.scopes = grant.scope.split(" ")
        request.user = grant.user
        request.consentry_grant_id = grant.pk
        if grant.nonce:
            request.nonce = grant.nonce
        return True

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: Request, *a: Any
    ) -> None:
        # validate_code already marked the code used; keeping the row until it expires is
        # what lets a replay be recognised.
        if not Grant.objects.filter(code=code_hash(code), application=request.client).exists():
            raise errors.InvalidGrantError(request=request)

    def confirm_redirect_uri(
        self, client_id: str, code: str, redirect_uri: str, client: Application, *a: Any, **k: Any
    ) -> bool:
        """The exchange names the authorization request's redirect URI, identically
        (RFC 6749 4.1.3): an exchange without one is refused, not given the default."""
        request = a[0] if a else k.get("request")
        if getattr(request, "using_default_redirect_uri", False):
            return False
        grant = Grant.objects.filter(code=code_hash(code), application=client).first()
        return grant is not None and bool(grant.redirect_uri_allowed(redirect_uri))

    def get_code_challenge(self, code: str, request: Request) -> str | None:
        grant = Grant.objects.get(code=code_hash(code), application=request.client)
        return grant.code_challenge or None

    def get_code_challenge_method(self, code: str, request: Request) -> str | None:
        grant = Grant.objects.get(code=code_hash(code), application=request.client)
        return grant.code_challenge_method or None

    def get_authorization_code_scopes(
        self, client_id: str, code: str, redirect_uri: str, request: Request
    ) -> list[str]:
        scope = Grant.objects.filter(code=code_hash(code)).values_list("scope", flat=True).first()
        return scope.split() if scope else []

    def get_authorization_code_nonce(
        self, client_id: str, code: str, redirect_uri: str, request: Request
    ) -> str | None:
        nonce = Grant.objects.filter(code=code_hash(code)).values_list("nonce", flat=True).first()
        return nonce or None

    # --- tokens derive from the consent ----------------------------------------------

    def validate_refresh_token(
        self, refresh_token: str, client: Application, request: Request, *a: Any
    ) -> bool:
        if not super().validate_refresh_token(refresh_token, client, request, *a):
            return False
        rt = request.refresh_token_instance
        _hold_consent(rt.user_id, client.pk)
        # Spend it once: lock the row (TokenView.post is one transaction) and look again.
        # A concurrent refresh with the same token that rotated it first has revoked it by
        # the time the lock is ours; that is reuse, and reuse revokes the family (RFC 9700
        # 4.14.2). Without this, racing requests all passed the unlocked check above.
        if not RefreshToken.objects.select_for_update().filter(pk=rt.pk, revoked=None).exists():
            if rt.token_family:
                RefreshToken.revoke_family(rt.token_family)
            return False
        consent = consent_for(rt.user_id, client.pk)
        request.consentry_consent = consent  # the same row _save_bearer_token needs
        return bool(active_permissions(consent)) and token_holder_may_act(client, rt.user)

    def _consent_for_request(self, request: Request) -> Consent | None:
        cached = getattr(request, "consentry_consent", None)
        if cached is None or (cached.person_id, cached.application_id) != (
            request.user.pk,
            request.client.pk,
        ):
            cached = consent_for(request.user.pk, request.client.pk)
            request.consentry_consent = cached
        return cached

    def _save_bearer_token(self, token: dict[str, Any], request: Request, *a: Any, **k: Any) -> Any:
        consent = self._consent_for_request(request)
        active = active_permissions(consent)
        # Never more than the consent grants right now, whatever the code or refresh
        # token carried (it may have been narrowed since).
        token["scope"] = " ".join(s for s in str(token.get("scope", "")).split() if s in active)
        if not token["scope"] or consent is None:
            raise errors.AccessDeniedError(request=request)
        result = super()._save_bearer_token(token, request, *a, **k)
        do_record_consent_use(consent)
        return result

    def _create_access_token(
        self,
        expires: Any,
        request: Request,
        token: dict[str, Any],
        source_refresh_token: Any = None,
    ) -> AccessToken:
        """django-oauth-toolkit's, with two differences: the consent is set before the
        INSERT (not by a second UPDATE), and the ID token row this request has just saved
        is taken as it is, where django-oauth-toolkit reads it back from the signed token
        (the client by audience, a signature check, the row by jti): three queries and an
        RSA verification on every token response (issue "Performance")."""
        id_token = None
        if token.get("id_token"):
            saved = getattr(request, "consentry_id_token", None)
            if saved is not None and _jti(token["id_token"]) == str(saved.jti):
                id_token = saved
            else:
                id_token = self._load_id_token(token["id_token"])
        access_token = AccessToken(
            user=request.user,
            scope=token["scope"],
            expires=expires,
            id_token=id_token,
            application=request.client,
            source_refresh_token=source_refresh_token,
            resource=getattr(request, "resource", []),  # RFC 8707
            consent=self._consent_for_request(request),
        )
        self._set_token_value(access_token, token["access_token"])
        access_token.save()
        request.consentry_access_token_id = access_token.pk  # for the ID token's ledger entry
        return access_token

    def _save_id_token(self, jti: Any, request: Request, expires: Any, *a: Any, **k: Any) -> Any:
        id_token = super()._save_id_token(jti, request, expires, *a, **k)
        request.consentry_id_token = id_token  # _create_access_token links this very row
        return id_token

    def _create_refresh_token(
        self,
        request: Request,
        refresh_token_code: str,
        access_token: AccessToken,
        previous_refresh_token: RefreshToken | None,
    ) -> RefreshToken:
        # django-oauth-toolkit's, with the consent set before the INSERT.
        rt = RefreshToken(
            user=request.user,
            application=request.client,
            access_token=access_token,
            token_family=(
                previous_refresh_token.token_family if previous_refresh_token else uuid.uuid4()
            ),
            resource=getattr(request, "resource", []),  # RFC 8707
            consent=self._consent_for_request(request),
        )
        self._set_token_value(rt, refresh_token_code)
        rt.save()
        grant_id = getattr(request, "consentry_grant_id", None)
        if grant_id is not None and previous_refresh_token is None:
            Grant.objects.filter(pk=grant_id).update(token_family=rt.token_family)
        return rt

    def revoke_token(self, token: str, token_type_hint: str, request: Request, *a: Any) -> None:
        """RFC 7009 2.1: a token issued to another client is refused with an error (the
        caller already holds the token, so this tells it nothing new), never silently
        left alone with a 200."""
        checksum = token_checksum(token)
        own = getattr(request.client, "pk", None)
        for model in (AccessToken, RefreshToken):
            rows = model.objects.filter(token_checksum=checksum)
            if (
                rows.exclude(application_id=own).exists()
                and not rows.filter(application_id=own).exists()
            ):
                raise errors.UnauthorizedClientError(
                    description="This token was not issued to this client.", request=request
                )
        super().revoke_token(token, token_type_hint, request, *a)

    def _load_access_token(self, token: str) -> AccessToken | None:
        return access_token_for(token)

    # --- OpenID Connect claims ----------------------------------------------------------

    def get_claim_dict(self, request: Request) -> dict[str, Any]:
        person = request.user
        app = request.client
        consent = self._consent_for_request(request)
        relay = consent is not None and consent.email_choice == "relay"
        return {
            "sub": app_scoped_id(app.pk, person.pk),
            "name": person.name,
            "picture": person.picture,
            "email": relay_address(app.pk, person.pk) if relay else person.email,
            # A relay address forwards to the real one: it is as verified as that is.
            "email_verified": person.email_verified_at is not None,
        }

    # --- ID token and userinfo claims are disclosures (docs/rules.md): ledgered ----------------

    def finalize_id_token(
        self, id_token: dict[str, Any], token: Any, token_handler: Any, request: Request
    ) -> str:
        """Sign the ID token and record its claims in the disclosure ledger, in the
        transaction that issues it (consentry.oauth.views.TokenView is one transaction):
        if the ledger write fails, no ID token leaves."""
        token_id = getattr(request, "consentry_access_token_id", None)
        with transaction.atomic():
            signed = str(super().finalize_id_token(id_token, token, token_handler, request))
            record_claims_disclosure(request, id_token, ENDPOINT_ID_TOKEN, token_id)
        return signed

    def get_userinfo_claims(self, request: Request) -> dict[str, Any]:
        """The userinfo answer, recorded in the ledger before it leaves."""
        claims = dict(super().get_userinfo_claims(request))
        with transaction.atomic():
            record_claims_disclosure(
                request, claims, ENDPOINT_USERINFO, getattr(request.access_token, "pk", None)
            )
        return claims

    def get_discovery_claims(self, request: Any) -> list[str]:
        return ["sub", "name", "picture", "email", "email_verified"]
