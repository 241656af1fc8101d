"""django-oauth-toolkit models, swapped before the first migration so that Consentry can
hang its own columns (review status, roles, limits) off them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from oauth2_provider import models as dot

from consentry.graph.release import app_usable


class AppStatus(models.TextChoices):
    DEVELOPMENT = "development", "in development"
    LIVE = "live", "live"
    SUSPENDED = "suspended", "suspended"
    BANNED = "banned", "banned"


# The statuses in which an app may authenticate, obtain and use tokens at all (rule 1:
# never suspended or banned): Application.is_usable and the lane's client check.
USABLE_STATUSES = frozenset({AppStatus.LIVE, AppStatus.DEVELOPMENT})


class Application(dot.AbstractApplication):
    """A third-party app (an OAuth client) and what review allowed it."""

    status = models.CharField(
        max_length=12, choices=AppStatus.choices, default=AppStatus.DEVELOPMENT
    )
    description = models.TextField(blank=True)
    icon_url = models.URLField(max_length=500, blank=True)
    # Permissions the app may ask for. Basic ones (openid, profile, email) need no review;
    # the others are added here by staff review (docs/rules.md rule 1).
    approved_permissions = models.JSONField(default=list, blank=True)
    # The purpose the developer declared for each permission, shown on the consent screen.
    purposes = models.JSONField(default=dict, blank=True)
    agreement_signed_at = models.DateTimeField(null=True, blank=True)
    # People with a role on the app: in development mode only they can use it (rule 1).
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="app_roles", blank=True)
    # Per-app overrides of the Graph API limits, e.g. {"requests_per_minute": 600}.
    limits = models.JSONField(default=dict, blank=True)

    class Meta(dot.AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"

    def is_usable(self, request: object) -> bool:
        """django-oauth-toolkit's hook: suspended and banned apps cannot authenticate,
        obtain or use tokens at all (docs/rules.md rule 1)."""
        return self.status in USABLE_STATUSES

    def redirect_uri_allowed(self, uri: str) -> bool:
        """Exact string comparison with a registered URI (RFC 9700 2.1, OpenID Connect
        Core 3.1.2.1). RFC 8252 7.3's "any port" on loopback is meant for native (public)
        clients; every Consentry client is confidential, so it gets none."""
        if self.client_type == self.CLIENT_CONFIDENTIAL:
            return uri in self.redirect_uris.split()
        return bool(super().redirect_uri_allowed(uri))

    def post_logout_redirect_uri_allowed(self, uri: str) -> bool:
        """Exact comparison, as for redirect_uri_allowed."""
        if self.client_type == self.CLIENT_CONFIDENTIAL:
            return uri in self.post_logout_redirect_uris.split()
        return bool(super().post_logout_redirect_uri_allowed(uri))

    def is_usable_by(self, person_id: int, member_ids: set[int] | None = None) -> bool:
        """Rule 1, first half (consentry.graph.release.app_usable) for `person_id`."""
        if self.status != AppStatus.DEVELOPMENT:
            return app_usable(self.status, is_member=False)
        ids = (
            member_ids if member_ids is not None else set(self.members.values_list("pk", flat=True))
        )
        return app_usable(self.status, is_member=person_id in ids)


class Grant(dot.AbstractGrant):
    """An authorization code (django-oauth-toolkit's name); the person's consent is
    consentry.grants.models.Consent.

    `code` holds the SHA-256 of the code, never the code (consentry.oauth.validators).
    A used code is kept, marked `used_at`, until it expires, so that a second use is
    recognised as replay and revokes the tokens the first use produced (RFC 6749 4.1.2,
    RFC 9700 4.5): `token_family` names them.
    """

    used_at = models.DateTimeField(null=True, blank=True)
    token_family = models.UUIDField(null=True, blank=True)

    class Meta(dot.AbstractGrant.Meta):
        swappable = "OAUTH2_PROVIDER_GRANT_MODEL"


class AccessToken(dot.AbstractAccessToken):
    """An access token; valid only while its `consent` is active, and never carrying more
    than the consent's active permissions (consentry.grants.actions keeps it so)."""

    consent = models.ForeignKey(
        "grants.Consent",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="access_tokens",
    )

    class Meta(dot.AbstractAccessToken.Meta):
        swappable = "OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL"


class RefreshToken(dot.AbstractRefreshToken):
    consent = models.ForeignKey(
        "grants.Consent",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="refresh_tokens",
    )

    class Meta(dot.AbstractRefreshToken.Meta):
        swappable = "OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL"


class IDToken(dot.AbstractIDToken):
    class Meta(dot.AbstractIDToken.Meta):
        swappable = "OAUTH2_PROVIDER_ID_TOKEN_MODEL"
