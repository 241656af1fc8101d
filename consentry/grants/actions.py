"""Writes to consent (docs/rules.md rule 2). Tokens derive from the consent: every function here
that takes something away invalidates the affected tokens in the same transaction, so the
next API call with an old token already sees the change.

These use `transaction.atomic()` without `durable=True` on purpose: incident response bans
an app by revoking many consents inside its own single transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from consentry.grants.models import (
    GRANT_LIFETIME,
    ClosedRoute,
    Consent,
    ConsentPermission,
    FriendShareOptIn,
)
from consentry.grants.permissions import PERMISSIONS, mask_to_permissions, permissions_to_mask
from consentry.oauth.models import AccessToken, Application, RefreshToken
from consentry.oauth.tokens import forget_tokens
from consentry.people.fields import FIELD_BIT, PROFILE_FIELDS, Audience
from consentry.people.models import Friendship, Person

EMAIL_CHOICES = ("real", "relay")
# Recording a use rewrites the row at most this often: it runs on every Graph API call.
USE_RECORD_INTERVAL = timedelta(hours=1)


def consent_for(person_id: int, application_id: int) -> Consent | None:
    """The (possibly revoked or expired) consent of a person to an app, if any."""
    return Consent.objects.filter(person_id=person_id, application_id=application_id).first()


def active_permissions(consent: Consent | None, now: datetime | None = None) -> set[str]:
    """The permissions a consent grants right now: none if it is revoked or expired.

    Read from `permission_mask`, which every action here keeps equal to the active
    ConsentPermission rows (the rows stay the record of when and with what purpose)."""
    if consent is None or not consent.is_active(now):
        return set()
    return set(mask_to_permissions(consent.permission_mask))


def do_grant_consent(
    person: Person,
    application: Application,
    scopes: Iterable[str],
    *,
    purposes_shown: dict[str, str] | None = None,
    email_choice: str = "real",
) -> Consent:
    """Record that `person` granted `scopes` to `application` (the consent screen's "Allow").

    Creates or extends the one Consent for (person, app): adds a ConsentPermission per new
    permission (with the purpose text shown, and when), re-grants permissions that were
    revoked, un-revokes the consent, and starts a fresh 90-day expiry (rule 2). Permissions
    already active keep their original `granted_at`. Unknown permission names are refused.
    `Consent.permission_mask` ends equal to the active permission rows.
    """
    scopes = set(scopes)
    unknown = scopes - PERMISSIONS.keys()
    if unknown:
        raise ValueError(f"unknown permissions: {sorted(unknown)}")
    if email_choice not in EMAIL_CHOICES:
        raise ValueError(f"email_choice must be one of {EMAIL_CHOICES}")
    purposes_shown = purposes_shown or {}
    now = timezone.now()
    with transaction.atomic():
        consent, created = Consent.objects.select_for_update().get_or_create(
            person=person,
            application=application,
            defaults={
                "created_at": now,
                "last_used_at": now,
                "expires_at": now + GRANT_LIFETIME,
                "email_choice": email_choice,
                "permission_mask": permissions_to_mask(scopes),
            },
        )
        existing: dict[str, ConsentPermission] = {}
        if not created:
            if not consent.is_active(now):
                # A lapsed consent starts over: nothing of it survives the lapse.
                ConsentPermission.objects.filter(consent=consent, revoked_at__isnull=True).update(
                    revoked_at=now
                )
            existing = {p.permission: p for p in ConsentPermission.objects.filter(consent=consent)}
            still_active = {name for name, row in existing.items() if row.revoked_at is None}
            consent.revoked_at = None
            consent.last_used_at = now
            consent.expires_at = now + GRANT_LIFETIME
            consent.permission_mask = permissions_to_mask(still_active | scopes)
            if "email" in scopes:
                consent.email_choice = email_choice
            consent.save(
                update_fields=[
                    "revoked_at",
                    "last_used_at",
                    "expires_at",
                    "email_choice",
                    "permission_mask",
                ]
            )
        for scope in sorted(scopes):
            row = existing.get(scope)
            if row is None:
                ConsentPermission.objects.create(
                    consent=consent,
                    permission=scope,
                    granted_at=now,
                    purpose_shown=purposes_shown.get(scope, ""),
                )
            elif row.revoked_at is not None:
                row.revoked_at = None
                row.granted_at = now
                row.purpose_shown = purposes_shown.get(scope, row.purpose_shown)
                row.save(update_fields=["revoked_at", "granted_at", "purpose_shown"])
        forget_tokens(consent_ids=[consent.pk])
    return consent


def do_revoke_consent(consent: Consent) -> None:
    """Revoke a person's whole grant to an app, at once (rule 2, "on revocation at once").

    Marks the consent and all its permissions revoked and, in the same transaction,
    deletes every access token and revokes every refresh token the app holds for that
    person, so no old token works for even one more call. Its `permission_mask` becomes 0.
    """
    now = timezone.now()
    with transaction.atomic():
        _lock(consent)
        Consent.objects.filter(pk=consent.pk).update(revoked_at=now, permission_mask=0)
        ConsentPermission.objects.filter(consent=consent, revoked_at__isnull=True).update(
            revoked_at=now
        )
        _invalidate_tokens(consent.person_id, consent.application_id, now)
        forget_tokens(consent_ids=[consent.pk])
    consent.revoked_at = now
    consent.permission_mask = 0


def do_revoke_permission(consent: Consent, permission: str) -> None:
    """Revoke one permission of a grant; tokens that carried it lose it in the same
    transaction (their `scope` is rewritten without it, refresh tokens included, since a
    refreshed token takes its scope from the access token it replaces).

    Revoking the last active permission revokes the whole consent. The consent row is
    locked first and its `permission_mask` rewritten from the remaining active rows.
    """
    now = timezone.now()
    with transaction.atomic():
        _lock(consent)
        ConsentPermission.objects.filter(
            consent=consent, permission=permission, revoked_at__isnull=True
        ).update(revoked_at=now)
        forget_tokens(consent_ids=[consent.pk])
        remaining = ConsentPermission.objects.filter(
            consent=consent, revoked_at__isnull=True
        ).values_list("permission", flat=True)
        mask = permissions_to_mask(remaining)
        if not mask:
            Consent.objects.filter(pk=consent.pk).update(revoked_at=now, permission_mask=0)
            consent.revoked_at = now
            consent.permission_mask = 0
            _invalidate_tokens(consent.person_id, consent.application_id, now)
            return
        Consent.objects.filter(pk=consent.pk).update(permission_mask=mask)
        consent.permission_mask = mask
        tokens = AccessToken.objects.select_for_update().filter(
            user_id=consent.person_id,
            application_id=consent.application_id,
            scope__contains=permission,
        )
        for token in tokens:
            scopes = token.scope.split()
            if permission in scopes:
                token.scope = " ".join(s for s in scopes if s != permission)
                token.save(update_fields=["scope", "updated"])


def consent_use_due(last_used_at: datetime, now: datetime) -> bool:
    """Whether a use of the consent now is to be written (do_record_consent_use): the
    last recorded one is an hour old or more."""
    return now - last_used_at >= USE_RECORD_INTERVAL


def do_record_consent_use(consent: Consent, now: datetime | None = None) -> None:
    """The person used the app now: push the consent's expiry to 90 days from now (rule 2).

    Cheap enough for every API call: nothing is written when the last recorded use is less
    than an hour old, and the write is a single UPDATE (no transaction of its own).
    """
    now = now or timezone.now()
    if not consent_use_due(consent.last_used_at, now) or not consent.is_active(now):
        return  # an expired consent is not revived by use: the person must grant again
    Consent.objects.filter(pk=consent.pk, revoked_at__isnull=True, expires_at__gt=now).update(
        last_used_at=now, expires_at=now + GRANT_LIFETIME
    )
    forget_tokens(consent_ids=[consent.pk])  # cached token facts carry the old times
    consent.last_used_at = now
    consent.expires_at = now + GRANT_LIFETIME


def _lock(consent: Consent) -> None:
    """Lock the consent row until the transaction ends, so concurrent changes to one
    consent's permissions apply one after the other and its permission_mask, computed from
    the rows, is never built from a stale read."""
    list(Consent.objects.select_for_update().filter(pk=consent.pk).values_list("pk"))


def _invalidate_tokens(person_id: int, application_id: int, now: datetime) -> None:
    RefreshToken.objects.filter(
        user_id=person_id, application_id=application_id, revoked__isnull=True
    ).update(revoked=now, updated=now, access_token=None)
    AccessToken.objects.filter(user_id=person_id, application_id=application_id).delete()


def do_expire_consents(now: datetime | None = None, batch: int = 1000) -> int:
    """Rule 2's 90-day expiry made concrete (the lifecycle job runs it): consents past
    `expires_at` lose their permissions (rows marked revoked, `permission_mask` 0, the
    consent itself stays unrevoked: it expired) and every token of theirs, in one
    transaction per batch. Reads already treat them as inactive; this removes the tokens
    and keeps the mask honest. Returns how many consents expired."""
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            rows = list(
                Consent.objects.select_for_update()
                .filter(revoked_at__isnull=True, expires_at__lte=now, permission_mask__gt=0)
                .order_by("pk")
                .values_list("pk", "person_id", "application_id")[:batch]
            )
            if not rows:
                return total
            ids = [pk for pk, _person, _app in rows]
            ConsentPermission.objects.filter(consent_id__in=ids, revoked_at__isnull=True).update(
                revoked_at=now
            )
            Consent.objects.filter(pk__in=ids).update(permission_mask=0)
            forget_tokens(consent_ids=ids)
            for _pk, person_id, application_id in rows:
                _invalidate_tokens(person_id, application_id, now)
        total += len(rows)


# --- The person's side of rule 3: closed routes, friend-sharing opt-ins, audiences ---------


def do_close_route(person: Person, friend_id: int) -> bool:
    """`person` closes `friend_id`'s route: no app acting for that friend gets anything
    about `person` from the next API call on (rule 3, graph/release.py). Only a friend's
    route can be closed; returns False (and changes nothing) for anyone else."""
    with transaction.atomic():
        if not Friendship.objects.filter(person_id=person.pk, friend_id=friend_id).exists():
            return False
        ClosedRoute.objects.get_or_create(person_id=person.pk, through_id=friend_id)
    return True


def do_reopen_route(person: Person, friend_id: int) -> None:
    """Undo do_close_route: the friend's apps may again receive what rule 3 allows."""
    with transaction.atomic():
        ClosedRoute.objects.filter(person_id=person.pk, through_id=friend_id).delete()


def do_update_sharing(
    person: Person, audiences: dict[str, str], friend_share: Iterable[str]
) -> list[str]:
    """Set the audience of each profile field in `audiences` and the friend-sharing
    opt-in ("friends may bring my <field> into apps they use") to exactly the fields in
    `friend_share`. Every opt-in change leaves a FriendShareOptIn row. Takes effect on the
    next API call (the release rule reads these columns). Returns the changed fields."""
    share = set(friend_share)
    unknown = (share | audiences.keys()) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    valid = {a.value for a in Audience}
    if any(value not in valid for value in audiences.values()):
        raise ValueError("unknown audience")
    now = timezone.now()
    changed: list[str] = []
    with transaction.atomic():
        row = Person.objects.select_for_update().get(pk=person.pk)
        mask = 0
        for name in share:
            mask |= FIELD_BIT[name]
        log = []
        for name in PROFILE_FIELDS:
            before = bool(row.friend_share_mask & FIELD_BIT[name])
            after = name in share
            if before != after:
                log.append(FriendShareOptIn(person=row, field=name, enabled=after, changed_at=now))
                changed.append(name)
        update = ["friend_share_mask"]
        for name, value in audiences.items():
            column = f"audience_{name}"
            if getattr(row, column) != value:
                setattr(row, column, value)
                update.append(column)
                changed.append(name)
        row.friend_share_mask = mask
        row.save(update_fields=update)
        FriendShareOptIn.objects.bulk_create(log)
    for column in update:
        setattr(person, column, getattr(row, column))
    return sorted(set(changed))
