"""Consent as a first-class record (issue: OAuth provider). One `Consent` per (person, app)
holds what the person granted; tokens derive from it and die with it."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

GRANT_LIFETIME = timedelta(days=90)  # docs/rules.md rule 2: expires 90 days after last use


class Consent(models.Model):
    """A person's grant to an app. Active while not revoked and not expired."""

    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consents"
    )
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="consents",
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    # "real" or "relay": which address the person chose to give for the email permission.
    email_choice = models.CharField(max_length=8, default="real")
    # The active ConsentPermission rows (revoked_at is null) as grants.permissions.
    # PERMISSION_BIT bits, so a read of many people's grants is one column, not an
    # aggregate over rows (bench/read_friends.py). Every action in grants.actions keeps
    # it equal to the rows in the same transaction; 0 once the consent is revoked.
    permission_mask = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["person", "application"], name="consent_one_per_person_app"
            ),
        ]
        indexes = [models.Index(fields=["application", "person"], name="consent_app_person")]

    def __str__(self) -> str:
        return f"consent of {self.person_id} to app {self.application_id}"

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and self.expires_at > now

    def active_scopes(self) -> set[str]:
        return {p.permission for p in self.permissions.all() if p.revoked_at is None}


class ConsentPermission(models.Model):
    """One permission of a consent, with when it was granted and the purpose shown."""

    consent = models.ForeignKey(Consent, on_delete=models.CASCADE, related_name="permissions")
    permission = models.CharField(max_length=40)
    granted_at = models.DateTimeField(default=timezone.now)
    purpose_shown = models.TextField(blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["consent", "permission"], name="consent_permission_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.permission} in {self.consent_id}"


class FriendShareOptIn(models.Model):
    """Audit trail of Person.friend_share_mask changes ("friends may bring my <field> into
    apps they use"). The mask on Person is what the release rule reads."""

    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    field = models.CharField(max_length=40)
    enabled = models.BooleanField()
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.person_id} {self.field} {'on' if self.enabled else 'off'}"


class ClosedRoute(models.Model):
    """`person` closed `through`'s route (docs/rules.md rule 3): "apps may not get my data
    through this friend". While the row exists no app acting for `through` receives
    anything about `person` (graph/release.py). Reopening deletes the row."""

    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    through = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    closed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["through", "person"], name="closed_route_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.person_id} closed the route through {self.through_id}"
