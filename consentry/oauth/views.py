"""OAuth 2.1 / OpenID Connect endpoints that Consentry does differently from
django-oauth-toolkit: the consent screen and token introspection."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from django.db import connection, transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
)
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.exceptions import InvalidOIDCClientError, LogoutDenied, OAuthToolkitError
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import AuthorizationView, ConnectDiscoveryInfoView, JwksInfoView
from oauth2_provider.views import base as dot
from oauth2_provider.views import oidc as dot_oidc
from oauthlib.common import Request as OauthlibRequest
from oauthlib.oauth2.rfc6749 import errors as oauth_errors
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from oauthlib.openid.connect.core.exceptions import ConsentRequired, LoginRequired

from consentry.db.prepared import prepared_cursor
from consentry.grants.actions import (
    active_permissions,
    consent_for,
    do_grant_consent,
    do_record_consent_use,
)
from consentry.grants.models import Consent
from consentry.grants.permissions import fields_to_mask
from consentry.ledger.api import record_disclosure
from consentry.oauth.consent import ConsentPlan, plan_consent
from consentry.oauth.models import Application
from consentry.oauth.pairwise import app_scoped_id
from consentry.oauth.throttle import ClientAuthThrottled
from consentry.oauth.tokens import TokenFacts, usable_token_facts, usable_token_facts_with
from consentry.oauth.validators import (
    CLAIM_FIELD,
    ENDPOINT_USERINFO,
    ConsentryValidator,
    relay_address,
)
from consentry.people.models import Person


def consent_csp(request: HttpRequest) -> str:
    """The consent page's Content-Security-Policy: never framed, and its forms may post
    only to this site, which then redirects to the app. Browsers apply form-action to
    that redirect too, so the client's registered redirect origin is allowed as well."""
    sources = ["'self'"]
    client_id = request.GET.get("client_id", "")
    app = Application.objects.filter(client_id=client_id).only("redirect_uris").first()
    if app is not None:
        registered = app.redirect_uris.split()
        asked = request.GET.get("redirect_uri", "")
        for uri in [asked] if asked in registered else registered:
            parts = urlsplit(uri)
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in sources:
                sources.append(origin)
    return f"frame-ancestors 'none'; form-action {' '.join(sources)}"


@method_decorator([never_cache, xframe_options_deny], name="dispatch")
class ConsentView(AuthorizationView):
    """The authorization endpoint (RFC 6749 4.1.1) with Consentry's consent screen.

    Both GET and POST validate the authorization request from the query string, so the
    POST cannot be fed parameters the person was not shown; the form carries only the
    person's answer (CSRF-protected). Only ticked permissions are granted, recorded in
    the person's Consent, and put in the code; "Deny" returns `access_denied` to the app.
    """

    template_name = "oauth/consent.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if _prompt_none(request) and not request.user.is_authenticated:
            response = self._refuse_without_prompting(request, LoginRequired)
        else:
            response = super().dispatch(request, *args, **kwargs)
        response["Content-Security-Policy"] = consent_csp(request)
        return response

    def redirect(self, redirect_to: str, application: Application | None) -> HttpResponse:
        """Every redirect back to the app names the issuer (RFC 9207 2), errors included:
        discovery advertises `authorization_response_iss_parameter_supported`, so a client
        that checks it would read an error without `iss` as a mix-up attack."""
        issuer = oauth2_settings.oauth2_authorization_server_issuer(self.request)
        return super().redirect(with_issuer(redirect_to, issuer), application)

    def _validated(
        self, request: HttpRequest
    ) -> tuple[Application, list[str], dict[str, Any]] | HttpResponse:
        try:
            scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        application = Application.objects.get(client_id=credentials["client_id"])
        if not application.is_usable_by(request.user.pk):
            # A development app the person has no role on looks exactly like an unknown
            # one (same answer for unknown and forbidden).
            unknown = oauth_errors.InvalidClientIdError()
            return self.render_to_response({"error": unknown}, status=400)
        return application, list(scopes), credentials

    def _plan(
        self, request: HttpRequest, application: Application, scopes: list[str]
    ) -> tuple[Consent | None, ConsentPlan]:
        consent = consent_for(_person(request).pk, application.pk)
        plan = plan_consent(scopes, active_permissions(consent), application.purposes or {})
        return consent, plan

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        validated = self._validated(request)
        if isinstance(validated, HttpResponse):
            return validated
        application, scopes, credentials = validated
        if "login" in request.GET.get("prompt", "").split():
            return self.handle_prompt_login()
        consent, plan = self._plan(request, application, scopes)
        if plan.nothing_new and consent is not None and plan.requested:
            # Incremental consent: everything asked for is already granted.
            do_record_consent_use(consent)
            return self._authorize(application, plan.granted(set()), credentials)
        if _prompt_none(request):
            return self._refuse_without_prompting(request, ConsentRequired)
        return self.render_to_response(
            self._context(application, plan, consent_email=getattr(consent, "email_choice", ""))
        )

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        validated = self._validated(request)
        if isinstance(validated, HttpResponse):
            return validated
        application, scopes, credentials = validated
        consent, plan = self._plan(request, application, scopes)
        ticked = set(request.POST.getlist("permission"))
        granted = plan.granted(ticked)
        if request.POST.get("decision") != "allow" or not granted:
            return self._authorize(application, (), credentials)
        new = plan.new_permissions(ticked)
        email_choice = request.POST.get("email_choice", "real")
        if "email" not in new:
            email_choice = consent.email_choice if consent is not None else "real"
        # The consent and the code are one transaction: if the code cannot be issued,
        # the person has not consented to anything either.
        try:
            with transaction.atomic():
                do_grant_consent(
                    _person(request),
                    application,
                    set(granted),
                    purposes_shown={p: t for p, t in plan.purposes_shown().items() if p in new},
                    email_choice=email_choice if email_choice in ("real", "relay") else "real",
                )
                uri, _headers, _body, _status = self.create_authorization_response(
                    request=self.request,
                    scopes=" ".join(granted),
                    credentials=credentials,
                    allow=True,
                )
        except OAuthToolkitError as error:
            return self.error_response(error, application)
        return self.redirect(uri, application)

    def _refuse_without_prompting(
        self, request: HttpRequest, error_class: type[OAuth2Error]
    ) -> HttpResponse:
        """OpenID Connect Core 3.1.2.1 and 3.1.2.6: with `prompt=none` no page may be
        shown, so a request that needs a sign-in or new consent is answered to the app
        with `login_required` or `consent_required` (after the usual request checks:
        an unknown client or redirect URI still gets no redirect)."""
        try:
            _scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        application = Application.objects.get(client_id=credentials["client_id"])
        refusal = error_class(state=credentials.get("state"))
        return self.redirect(refusal.in_uri(credentials["redirect_uri"]), application)

    def _authorize(
        self, application: Application, scopes: tuple[str, ...], credentials: dict[str, Any]
    ) -> HttpResponse:
        try:
            uri, _headers, _body, _status = self.create_authorization_response(
                request=self.request,
                scopes=" ".join(scopes),
                credentials=credentials,
                allow=bool(scopes),
            )
        except OAuthToolkitError as error:
            return self.error_response(error, application)
        return self.redirect(uri, application)

    def _context(
        self, application: Application, plan: ConsentPlan, consent_email: str
    ) -> dict[str, Any]:
        person = self.request.user
        return {
            "application": application,
            "plan": plan,
            "rows": plan.rows,
            "already": sorted(plan.already),
            "incremental": bool(plan.already),
            "status": application.get_status_display(),
            "asks_email": any(r.permission == "email" for r in plan.rows),
            "email_choice": consent_email or "real",
            "real_email": getattr(person, "email", ""),
            "relay_email": relay_address(application.pk, person.pk),
        }


def with_issuer(uri: str, issuer: str) -> str:
    """`uri` with exactly one `iss` query parameter, the issuer's (RFC 9207 2)."""
    parts = urlsplit(uri)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "iss"]
    query.append(("iss", issuer))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _prompt_none(request: HttpRequest) -> bool:
    return "none" in request.GET.get("prompt", "").split()


def _person(request: HttpRequest) -> Person:
    """The signed-in person (the authorization endpoint requires login)."""
    assert isinstance(request.user, Person)
    return request.user


def json_error(response: HttpResponseBase) -> HttpResponseBase:
    """An error from a back-channel endpoint in JSON (RFC 6749 5.2 / RFC 6750 3.1), even
    where Django or django-oauth-toolkit answered with an empty or HTML body (a 405, a
    userinfo 401); the challenge and Allow headers are kept."""
    if response.status_code < 400 or response.get("Content-Type", "").startswith(
        "application/json"
    ):
        return response
    challenge = response.get("WWW-Authenticate", "")
    code = _challenge_error(challenge) or {
        401: "invalid_token",
        403: "insufficient_scope",
        405: "invalid_request",
    }.get(response.status_code, "invalid_request")
    fixed = JsonResponse({"error": code}, status=response.status_code)
    for header in ("WWW-Authenticate", "Allow", "Retry-After"):
        if header in response:
            fixed[header] = response[header]
    fixed["Cache-Control"] = "no-store"
    return fixed


def json_errors(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """A read-only JSON document's view (discovery, metadata, JWKS) whose errors, a 405
    for a POST say, are JSON too (json_error)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return json_error(view(request, *args, **kwargs))

    return wrapped


def _challenge_error(challenge: str) -> str | None:
    marker = 'error="'
    start = challenge.find(marker)
    if start < 0:
        return None
    end = challenge.find('"', start + len(marker))
    return challenge[start + len(marker) : end] or None


def client_auth_challenge(response: HttpResponse) -> HttpResponse:
    """A 401 for failed client authentication names the scheme clients authenticate with
    here, HTTP Basic (RFC 6749 5.2), never oauthlib's `Bearer`."""
    if response.status_code == 401:
        response["WWW-Authenticate"] = 'Basic realm="consentry"'
    return response


@method_decorator(csrf_exempt, name="dispatch")
class TokenView(dot.TokenView):
    """The token endpoint (RFC 6749 3.2), django-oauth-toolkit's, with the right
    authentication challenge and the client-authentication throttle's 429."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return json_error(super().dispatch(request, *args, **kwargs))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # One transaction: the tokens, the ID token and its ledger entry commit together.
        with transaction.atomic():
            response = super().post(request, *args, **kwargs)
        return client_auth_challenge(response)


@method_decorator(csrf_exempt, name="dispatch")
class RevokeTokenView(dot.RevokeTokenView):
    """Token revocation (RFC 7009). A token issued to another client is refused with an
    error (RFC 7009 2.1), not answered 200 as if it had been revoked; an unknown token is
    200 (RFC 7009 2.2)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return json_error(super().dispatch(request, *args, **kwargs))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = super().post(request, *args, **kwargs)
        except OAuth2Error as error:
            response = HttpResponse(
                error.json, status=error.status_code, content_type="application/json"
            )
            response["Cache-Control"] = "no-store"
        return client_auth_challenge(response)


@method_decorator(csrf_exempt, name="dispatch")
class IntrospectView(View):
    """Token introspection for resource servers (RFC 7662).

    The caller authenticates as a client (HTTP Basic or client_secret_post, RFC 7662 2.1)
    and learns about its own tokens only: a token issued to another app is reported
    `{"active": false}`, exactly like an unknown one (RFC 7662 2.2 lets the server limit
    what it reveals). `sub` is the app-scoped id, never a global one.
    """

    http_method_names = ["post"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return json_error(super().dispatch(request, *args, **kwargs))

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            client = _authenticated_client(request)
        except ClientAuthThrottled as throttled:
            response = HttpResponse(throttled.json, status=429, content_type="application/json")
            response["Retry-After"] = str(throttled.retry_after)
            return response
        if client is None:
            response = JsonResponse({"error": "invalid_client"}, status=401)
            response["WWW-Authenticate"] = 'Basic realm="introspection"'
            return response
        response = JsonResponse(
            introspection(client.pk, client.client_id, request.POST.get("token", ""))
        )
        response["Cache-Control"] = "no-store"
        return response


def introspection(app_id: int, client_id: str, raw: str) -> dict[str, Any]:
    """RFC 7662 2.2's answer about `raw` to the authenticated client `app_id`."""
    return introspection_of(app_id, client_id, usable_token_facts(raw))


def introspection_of(app_id: int, client_id: str, facts: TokenFacts | None) -> dict[str, Any]:
    """The answer for a token whose facts are `facts` when it is usable, else None."""
    if facts is None or facts.app_id != app_id:
        return {"active": False}
    return {
        "active": True,
        "scope": facts.scope,
        "client_id": client_id,
        "token_type": "Bearer",
        "exp": int(facts.expires.timestamp()),
        "iat": int(facts.created.timestamp()),
        "sub": app_scoped_id(app_id, facts.person_id),
    }


def _authenticated_client(request: HttpRequest) -> Application | None:
    """The confidential client authenticating this request, throttled like the token
    endpoint (ConsentryValidator.authenticate_client)."""
    headers = {
        "HTTP_AUTHORIZATION": request.META.get("HTTP_AUTHORIZATION", ""),
        "REMOTE_ADDR": request.META.get("REMOTE_ADDR", ""),
    }
    body = [(k, v) for k, v in request.POST.items() if k in ("client_id", "client_secret")]
    oauth_request = OauthlibRequest(request.build_absolute_uri(), "POST", body, headers)
    oauth_request.client = None
    if not ConsentryValidator().authenticate_client(oauth_request):
        return None
    client = oauth_request.client
    if not isinstance(client, Application) or client.client_type != client.CLIENT_CONFIDENTIAL:
        return None
    return client


class DiscoveryView(ConnectDiscoveryInfoView):
    """OpenID Connect Discovery 1.0 (`/.well-known/openid-configuration`): django-oauth-
    toolkit's document, corrected to advertise only what this server accepts. Built once
    per site address and then served as bytes."""

    _documents: ClassVar[dict[str, tuple[bytes, dict[str, str]]]] = {}

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        site = request.build_absolute_uri("/")
        cached = self._documents.get(site)
        if cached is None:
            cached = self._build(request, *args, **kwargs)
            if len(self._documents) < 16:  # one per address the site answers to
                self._documents[site] = cached
        body, headers = cached
        response = HttpResponse(body, content_type="application/json")
        for header, value in headers.items():
            response[header] = value
        return response

    def _build(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> tuple[bytes, dict[str, str]]:
        response = super().get(request, *args, **kwargs)
        data = json.loads(response.content)
        data["id_token_signing_alg_values_supported"] = ["RS256"]
        data["code_challenge_methods_supported"] = ["S256"]
        # OpenID Connect Discovery 1.0 3: request_uri support defaults to true when omitted.
        data["request_parameter_supported"] = False
        data["request_uri_parameter_supported"] = False
        data["grant_types_supported"] = ["authorization_code", "refresh_token"]
        data["introspection_endpoint"] = request.build_absolute_uri(
            reverse("oauth2_provider:introspect")
        )
        data["revocation_endpoint"] = request.build_absolute_uri(
            reverse("oauth2_provider:revoke-token")
        )
        headers = {
            header: response[header]
            for header in ("Access-Control-Allow-Origin", "Cache-Control")
            if header in response
        }
        return orjson.dumps(data), headers


class JwksView(JwksInfoView):
    """The JWKS (RFC 7517) of the ID token signing keys: django-oauth-toolkit's document,
    computed once per key configuration (it parses every PEM key on each call)."""

    _documents: ClassVar[dict[tuple[str, ...], tuple[bytes, dict[str, str]]]] = {}

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        keys = (
            oauth2_settings.OIDC_RSA_PRIVATE_KEY,
            *oauth2_settings.OIDC_RSA_PRIVATE_KEYS_INACTIVE,
        )
        cached = self._documents.get(keys)
        if cached is None:
            response = super().get(request, *args, **kwargs)
            headers = {
                h: response[h]
                for h in ("Access-Control-Allow-Origin", "Cache-Control")
                if h in response
            }
            cached = self._documents[keys] = (response.content, headers)
        body, headers = cached
        response = HttpResponse(body, content_type="application/json")
        for header, value in headers.items():
            response[header] = value
        return response


class LogoutView(dot_oidc.RPInitiatedLogoutView):
    """OpenID Connect RP-Initiated Logout 1.0. The person is always asked before being
    signed out (OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT: a GET with any valid ID token
    hint must not sign someone out behind their back), and an unknown `client_id` is an
    error page, not a server error."""

    template_name = "oauth/logout_confirm.html"

    def error_response(self, error: Any) -> HttpResponse:
        if isinstance(error, LogoutDenied):  # "Stay signed in": back home, still signed in
            return HttpResponseRedirect("/")
        return super().error_response(error)

    def get_request_application(self, id_token: Any, client_id: str | None) -> Any:
        if client_id:
            application = Application.objects.filter(client_id=client_id).first()
            if application is None:
                raise InvalidOIDCClientError()
            return application
        return id_token.application if id_token else None


@method_decorator(csrf_exempt, name="dispatch")
class UserInfoView(View):
    """OpenID Connect Core 5.3 UserInfo, GET or POST with the access token as a bearer
    token in the Authorization header (RFC 6750 2.1). A token in the query string is
    refused (RFC 6750 2.3 is forbidden by RFC 9700 4.3.2). The token check is the read
    path's (consentry.oauth.tokens: one lean query, or none with Redis) plus one query
    for the claims; `sub` is the app-scoped id; the claims follow the token's scopes
    (ConsentryValidator.oidc_claim_scope) and the consent's email choice."""

    http_method_names = ["get", "post"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if "access_token" in request.GET:
            return _bearer_error(
                400, "invalid_request", "Send the access token in the Authorization header."
            )
        return json_error(super().dispatch(request, *args, **kwargs))

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._claims(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        return self._claims(request)

    def _claims(self, request: HttpRequest) -> HttpResponse:
        scheme, _, raw = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            response = JsonResponse({"error": "invalid_request"}, status=401)
            response["WWW-Authenticate"] = "Bearer"
            return response
        found = usable_token_facts_with(raw.strip(), CLAIM_COLUMNS)
        if found is None:
            return _bearer_error(401, "invalid_token", "The access token is not valid.")
        facts, columns = found
        scopes = facts.scopes
        if "openid" not in scopes:
            return _bearer_error(403, "insufficient_scope", "The token lacks the openid scope.")
        claims = userinfo_claims(facts, columns)
        response = JsonResponse(claims)
        response["Cache-Control"] = "no-store"
        response["Access-Control-Allow-Origin"] = "*"
        return response


CLAIM_COLUMNS = ("name", "picture", "email", "email_verified_at")


def userinfo_claims(facts: TokenFacts, columns: Sequence[Any] | None = None) -> dict[str, Any]:
    """The UserInfo claims for a usable token with the openid scope, ledgered before
    they are returned (docs/rules.md): the view's and the machine lane's answer.
    `columns` are the person's CLAIM_COLUMNS when read with the token
    (tokens.usable_token_facts_with), else they are read here."""
    scopes = facts.scopes
    claims: dict[str, Any] = {"sub": app_scoped_id(facts.app_id, facts.person_id)}
    wanted = [
        claim
        for claim, scope in ConsentryValidator.oidc_claim_scope.items()
        if scope in scopes and claim != "sub"
    ]
    # On PostgreSQL the ledger entry is the answer's only write and commits by itself
    # (record_disclosure outside a transaction), before the claims are returned.
    alone = connection.vendor == "postgresql"
    with contextlib.nullcontext() if alone else transaction.atomic():
        if wanted:
            name, picture, email, verified_at = (
                _claim_columns(facts.person_id) if columns is None else columns
            )
            if facts.email_choice == "relay":
                email = relay_address(facts.app_id, facts.person_id)
            values = {
                "name": name,
                "picture": picture,
                "email": email,
                # A relay address forwards to the real one: as verified as that is.
                "email_verified": verified_at is not None,
            }
            claims.update((claim, values[claim]) for claim in wanted)
        # The answer is a disclosure (docs/rules.md): ledgered before it leaves.
        fields = {CLAIM_FIELD[k] for k in claims if k in CLAIM_FIELD}
        record_disclosure(
            app_id=facts.app_id,
            actor_id=facts.person_id,
            endpoint=ENDPOINT_USERINFO,
            released=[(facts.person_id, fields_to_mask(fields))] if fields else [],
            token_id=facts.token_id,
        )
    return claims


@functools.cache
def _claims_sql(vendor: str) -> str:
    q = connection.ops.quote_name
    return (
        "SELECT name, picture, email, email_verified_at "  # noqa: S608 (known names)
        f"FROM {q(Person._meta.db_table)} WHERE id = %s"
    )


def _claim_columns(person_id: int) -> tuple[Any, ...]:
    """The person's name, picture, email and email_verified_at (only its being null or
    not is used), by a prepared statement: the ORM's query building cost more than the
    query, on every userinfo call."""
    with prepared_cursor() as cursor:
        cursor.execute(_claims_sql(connection.vendor), [person_id])
        row = cursor.fetchone()
    if row is None:
        raise Person.DoesNotExist
    return tuple(row)


def _bearer_error(status: int, error: str, description: str) -> HttpResponse:
    """An RFC 6750 3.1 error: the code in the body and in WWW-Authenticate."""
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["WWW-Authenticate"] = f'Bearer error="{error}", error_description="{description}"'
    return response
