"""Writes of the developer platform: each `do_<verb>_<noun>()` is one transaction, with
notices and callbacks sent only after it commits.

`Application.approved_permissions` (what the release rule reads) is never edited by hand
here: `_sync_reviewed_permissions()` derives it from the declarations staff approved and
the app's certification, and `Application.purposes` from the declared purposes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret

from consentry.developers import agreement, rules
from consentry.developers.models import (
    AppInvitation,
    AppProfile,
    AppRole,
    DeclarationStatus,
    DeveloperAccount,
    PermissionDeclaration,
    PreviousClientSecret,
    ReviewDecision,
    ReviewRequest,
    Role,
    SignedAgreement,
)
from consentry.developers.secrets import encrypt_secret
from consentry.grants.permissions import PERMISSIONS
from consentry.notices.actions import NoticeDraft, do_send_notices
from consentry.oauth.actions import check_redirect_uri, do_create_application
from consentry.oauth.models import Application, AppStatus
from consentry.people.models import Person
from consentry.staff.actions import do_record_staff_action

TERMS_VERSION = "2026-1"
CLI_REVIEWER = "operator (CLI)"
MAX_ICON_BYTES = 256 * 1024


class DeveloperError(ValueError):
    """A request the developer platform refuses; the message is shown to the person."""


@dataclass(frozen=True)
class Declaration:
    permission: str
    purpose: str
    retention_days: int


def profile_of(application: Application) -> AppProfile:
    """The app's developer profile, created empty for apps registered before it existed."""
    profile, _ = AppProfile.objects.get_or_create(application=application)
    return profile


# --- developers and apps --------------------------------------------------------------


def do_become_developer(person: Person) -> DeveloperAccount:
    """`person` accepts the platform terms and may register apps from now on."""
    with transaction.atomic(durable=True):
        account, _ = DeveloperAccount.objects.get_or_create(
            person=person, defaults={"terms_version": TERMS_VERSION}
        )
    return account


def do_register_app(
    *,
    owner: Person | None,
    name: str,
    redirect_uris: Sequence[str],
    description: str = "",
    website: str = "",
    privacy_policy_url: str = "",
    deauthorize_callback_url: str = "",
    data_deletion_callback_url: str = "",
    icon: bytes | None = None,
    icon_content_type: str = "",
    live: bool = False,
    icon_url: str = "",
    declarations: Iterable[Declaration] = (),
    signer_name: str = "",
    test_instructions: str = "",
) -> tuple[Application, str]:
    """Register an app in one transaction: the OAuth client, its profile (with the client
    secret encrypted for signing callbacks), `owner` as its admin, and the declarations
    given (review-needed ones go to staff review; nothing is approved here). Returns the
    app and its client secret, shown only this once. Raises DeveloperError."""
    for uri in (deauthorize_callback_url, data_deletion_callback_url):
        if uri:
            _check_callback_url(uri)
    declared = list(declarations)
    _check_declarations(declared, signer_name)
    if owner is not None and not DeveloperAccount.objects.filter(person=owner).exists():
        raise DeveloperError("accept the developer terms first")
    now = timezone.now()
    with transaction.atomic(durable=True):
        try:
            app, secret = do_create_application(
                name=name,
                redirect_uris=redirect_uris,
                live=live,
                description=description,
                icon_url=icon_url,
            )
        except ValueError as error:
            raise DeveloperError(str(error)) from error
        profile = AppProfile.objects.create(
            application=app,
            website=website,
            privacy_policy_url=privacy_policy_url,
            deauthorize_callback_url=deauthorize_callback_url,
            data_deletion_callback_url=data_deletion_callback_url,
            test_instructions=test_instructions,
            signing_secret=encrypt_secret(secret),
            certified_at=now if live else None,
        )
        if icon:
            _store_icon(app, profile, icon, icon_content_type)
        if owner is not None:
            AppRole.objects.create(application=app, person=owner, role=Role.ADMIN, granted_at=now)
            app.members.add(owner)
        _submit(app, owner, declared, signer_name, test_instructions)
    return app, secret


def do_update_app(
    application: Application,
    *,
    name: str,
    description: str,
    redirect_uris: Sequence[str],
    website: str,
    privacy_policy_url: str,
    deauthorize_callback_url: str,
    data_deletion_callback_url: str,
    icon: bytes | None = None,
    icon_content_type: str = "",
) -> None:
    """Change the app's details, redirect URIs, links and callback URLs (validated like at
    registration), and its icon when a new one is given."""
    for uri in (deauthorize_callback_url, data_deletion_callback_url):
        if uri:
            _check_callback_url(uri)
    for uri in redirect_uris:
        try:
            check_redirect_uri(uri)
        except ValueError as error:
            raise DeveloperError(str(error)) from None
    with transaction.atomic(durable=True):
        app = Application.objects.select_for_update().get(pk=application.pk)
        app.name = name
        app.description = description
        app.redirect_uris = " ".join(redirect_uris)
        app.post_logout_redirect_uris = " ".join(redirect_uris)
        app.save(
            update_fields=[
                "name",
                "description",
                "redirect_uris",
                "post_logout_redirect_uris",
                "updated",
            ]
        )
        profile = profile_of(app)
        profile.website = website
        profile.privacy_policy_url = privacy_policy_url
        profile.deauthorize_callback_url = deauthorize_callback_url
        profile.data_deletion_callback_url = data_deletion_callback_url
        profile.save(
            update_fields=[
                "website",
                "privacy_policy_url",
                "deauthorize_callback_url",
                "data_deletion_callback_url",
            ]
        )
        if icon:
            _store_icon(app, profile, icon, icon_content_type)


def _store_icon(app: Application, profile: AppProfile, icon: bytes, content_type: str) -> None:
    if len(icon) > MAX_ICON_BYTES:
        raise DeveloperError("the icon must be at most 256 KB")
    kind = _image_kind(icon)
    if kind is None or (content_type and content_type not in ("image/png", "image/jpeg")):
        raise DeveloperError("the icon must be a PNG or JPEG image")
    profile.icon = icon
    profile.icon_content_type = kind
    profile.save(update_fields=["icon", "icon_content_type"])
    app.icon_url = f"/developers/apps/{app.pk}/icon"
    app.save(update_fields=["icon_url", "updated"])


def _image_kind(data: bytes) -> str | None:
    """The image type from the file's own first bytes, never from what the upload claims."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def _check_callback_url(uri: str) -> None:
    """Like a redirect URI, but plain HTTP to a loopback address (which the server itself
    would call) only where settings.CALLBACKS_ALLOW_HTTP_LOOPBACK allows it (development
    and tests), never in production."""
    try:
        check_redirect_uri(uri)
        if not settings.CALLBACKS_ALLOW_HTTP_LOOPBACK and not uri.startswith("https://"):
            raise ValueError(uri)
    except ValueError:
        raise DeveloperError(
            f"callback URL {uri!r} must be an absolute https URL (or http on a loopback "
            "address), without user info or a fragment"
        ) from None


def do_rotate_client_secret(application: Application, grace: timedelta) -> str:
    """Give the app a new client secret (returned, shown once). The old one keeps
    authenticating for `grace` (0 to 24 hours), so the app can be redeployed without
    downtime. Callbacks are signed with the new secret from now on."""
    if grace < timedelta(0) or grace > rules.SECRET_GRACE_MAX:
        raise DeveloperError("the grace period must be between 0 and 24 hours")
    secret = generate_client_secret()
    now = timezone.now()
    with transaction.atomic(durable=True):
        app = Application.objects.select_for_update().get(pk=application.pk)
        profile = profile_of(app)
        if grace > timedelta(0):
            PreviousClientSecret.objects.create(
                application=app,
                secret_hash=app.client_secret,  # already hashed by django-oauth-toolkit
                signing_secret=profile.signing_secret,
                rotated_at=now,
                expires_at=now + grace,
            )
        app.client_secret = secret  # ClientSecretField hashes it on save
        app.save(update_fields=["client_secret", "updated"])
        profile.signing_secret = encrypt_secret(secret)
        profile.save(update_fields=["signing_secret"])
    application.client_secret = app.client_secret
    return secret


def do_set_app_mode(application: Application, live: bool) -> None:
    """Switch between development (only people with a role) and live (everyone; review
    decides the non-basic permissions). Going live needs a privacy policy URL and starts
    the certification year the first time."""
    with transaction.atomic(durable=True):
        app = Application.objects.select_for_update().get(pk=application.pk)
        if app.status not in (AppStatus.DEVELOPMENT, AppStatus.LIVE):
            raise DeveloperError("a suspended or banned app cannot change mode")
        profile = profile_of(app)
        if live and not profile.privacy_policy_url:
            raise DeveloperError("add a privacy policy URL before going live")
        app.status = AppStatus.LIVE if live else AppStatus.DEVELOPMENT
        app.save(update_fields=["status", "updated"])
        if live and profile.certified_at is None:
            profile.certified_at = timezone.now()
            profile.save(update_fields=["certified_at"])
    application.status = app.status


# --- roles ----------------------------------------------------------------------------


def do_invite_to_app(
    application: Application, invited_by: Person, email: str, role: str
) -> AppInvitation:
    """Invite whoever signs in with `email` to a role on the app; they accept in their
    own console. Re-inviting the same address replaces the open invitation."""
    if role not in Role.values:
        raise DeveloperError("unknown role")
    email = email.strip().lower()
    if not email or "@" not in email or len(email) > 254:
        raise DeveloperError("enter the sign-in email of the person to invite")
    now = timezone.now()
    with transaction.atomic(durable=True):
        AppInvitation.objects.filter(
            application=application, email=email, accepted_at__isnull=True
        ).update(withdrawn_at=now)
        invitation = AppInvitation.objects.create(
            application=application, email=email, role=role, invited_by=invited_by, created_at=now
        )
        invitee = Person.objects.filter(email__iexact=email).values_list("pk", flat=True).first()
        if invitee is not None:
            do_send_notices(
                [
                    NoticeDraft(
                        person_id=invitee,
                        kind="developers.invitation",
                        title=f"You are invited to work on {application.name}",
                        body=f"{invited_by.name} invited you as {role}. Accept in the "
                        "developer console at /developers/.",
                        data={"application_id": application.pk, "invitation_id": invitation.pk},
                    )
                ]
            )
    return invitation


def do_accept_invitation(invitation: AppInvitation, person: Person) -> AppRole:
    """`person` takes up the role they were invited to (only the invitee can)."""
    if person.email.lower() != invitation.email or not invitation.is_open():
        raise DeveloperError("this invitation is not for you or no longer open")
    now = timezone.now()
    with transaction.atomic(durable=True):
        claimed = AppInvitation.objects.filter(
            pk=invitation.pk, accepted_at__isnull=True, withdrawn_at__isnull=True
        ).update(accepted_at=now)
        if not claimed:
            raise DeveloperError("this invitation is no longer open")
        DeveloperAccount.objects.get_or_create(
            person=person, defaults={"terms_version": TERMS_VERSION}
        )
        role, _ = AppRole.objects.update_or_create(
            application_id=invitation.application_id,
            person=person,
            defaults={"role": invitation.role, "granted_at": now},
        )
        invitation.application.members.add(person)
    return role


def do_remove_app_role(application: Application, person_id: int) -> None:
    """Take a person's role on the app away; the last admin cannot be removed."""
    with transaction.atomic(durable=True):
        roles = list(AppRole.objects.select_for_update().filter(application=application))
        target = next((r for r in roles if r.person_id == person_id), None)
        if target is None:
            return
        admins = [r for r in roles if r.role == Role.ADMIN]
        if target.role == Role.ADMIN and len(admins) == 1:
            raise DeveloperError("an app keeps at least one admin")
        target.delete()
        application.members.remove(person_id)


# --- declarations, agreement, review ----------------------------------------------------


def _check_declarations(declared: Sequence[Declaration], signer_name: str) -> None:
    if any(rules.needs_agreement(d.permission) for d in declared) and not signer_name.strip():
        raise DeveloperError("user_likes and user_posts need the signed data-use agreement")
    seen: set[str] = set()
    for d in declared:
        if d.permission not in PERMISSIONS:
            raise DeveloperError(f"unknown permission {d.permission!r}")
        if d.permission in seen:
            raise DeveloperError(f"{d.permission} is declared twice")
        seen.add(d.permission)
        if not 0 < d.retention_days <= 3650:
            raise DeveloperError("the retention period must be 1 to 3650 days")
        if len(d.purpose) > 1000:
            raise DeveloperError("keep the purpose under 1000 characters")


def _declare(app: Application, declared: Sequence[Declaration], now: datetime) -> list[str]:
    """Create or update declarations. A review-needed permission whose purpose or
    retention changed goes back to review; basic ones are approved at once. Returns the
    permissions that now wait for review."""
    existing = {d.permission: d for d in PermissionDeclaration.objects.filter(application=app)}
    waiting: list[str] = []
    for d in declared:
        row = existing.get(d.permission)
        basic = not rules.needs_review(d.permission)
        unchanged = (
            row is not None
            and row.purpose == d.purpose
            and row.retention_days == d.retention_days
            and row.status in (DeclarationStatus.APPROVED, DeclarationStatus.PENDING)
        )
        if unchanged:
            assert row is not None
            if row.status == DeclarationStatus.PENDING:
                waiting.append(d.permission)
            continue
        status = DeclarationStatus.APPROVED if basic else DeclarationStatus.PENDING
        if not basic:
            waiting.append(d.permission)
        PermissionDeclaration.objects.update_or_create(
            application=app,
            permission=d.permission,
            defaults={
                "purpose": d.purpose.strip(),
                "retention_days": d.retention_days,
                "status": status,
                "reason": "",
                "decided_at": now if basic else None,
                "updated_at": now,
            },
        )
    return waiting


def _open_review_request(
    app: Application, person: Person | None, permissions: Sequence[str], test_instructions: str
) -> ReviewRequest | None:
    waiting = [p for p in permissions if rules.needs_review(p)]
    if not waiting:
        return None
    ReviewRequest.objects.filter(application=app, closed_at__isnull=True).update(
        closed_at=timezone.now()
    )
    return ReviewRequest.objects.create(
        application=app,
        permissions=sorted(waiting),
        test_instructions=test_instructions,
        submitted_by=person,
    )


def _sign_agreement(app: Application, person: Person | None, signer_name: str) -> SignedAgreement:
    signer_name = signer_name.strip()
    if not signer_name or len(signer_name) > 200:
        raise DeveloperError("type your full name to sign the data-use agreement")
    text = agreement.signed_text(agreement.CURRENT_VERSION, app.name, app.client_id, signer_name)
    return SignedAgreement.objects.create(
        application=app,
        version=agreement.CURRENT_VERSION,
        text=text,
        sha256=agreement.text_hash(text),
        signer=person,
        signer_name=signer_name,
        signer_email=person.email if person is not None else CLI_REVIEWER,
    )


def _submit(
    app: Application,
    person: Person | None,
    declared: Sequence[Declaration],
    signer_name: str,
    test_instructions: str,
) -> ReviewRequest | None:
    waiting = _declare(app, declared, timezone.now())
    if any(rules.needs_agreement(d.permission) for d in declared):
        _sign_agreement(app, person, signer_name)
    if test_instructions:
        profile = profile_of(app)
        profile.test_instructions = test_instructions
        profile.save(update_fields=["test_instructions"])
    request = _open_review_request(app, person, waiting, test_instructions)
    _sync_reviewed_permissions(app)
    return request


def do_submit_declarations(
    application: Application,
    person: Person | None,
    declared: Sequence[Declaration],
    *,
    signer_name: str = "",
    test_instructions: str = "",
) -> ReviewRequest | None:
    """Declare purposes and retention for the permissions the app requests, sign the
    data-use agreement when `user_likes` or `user_posts` is among them (required then),
    and submit what needs review. Returns the review request (None when nothing needs
    review)."""
    _check_declarations(declared, signer_name)
    with transaction.atomic(durable=True):
        app = Application.objects.select_for_update().get(pk=application.pk)
        request = _submit(app, person, declared, signer_name, test_instructions)
    return request


def do_decide_review(
    application: Application,
    staff: Person | None,
    *,
    approve: Iterable[str] = (),
    reject: Iterable[str] = (),
    reason: str = "",
) -> list[ReviewDecision]:
    """Approve and reject permissions with one reason (the command line's form of
    do_decide_permissions)."""
    approve, reject = sorted(set(approve)), sorted(set(reject))
    if set(approve) & set(reject):
        raise DeveloperError("a permission cannot be both approved and rejected")
    decisions = {p: (True, reason) for p in approve}
    decisions.update({p: (False, reason) for p in reject})
    return do_decide_permissions(application, staff, decisions)


def do_decide_permissions(
    application: Application,
    staff: Person | None,
    decisions: Mapping[str, tuple[bool, str]],
) -> list[ReviewDecision]:
    """Staff approve or reject declared permissions (permission -> (approved, reason)),
    each with the reason the developer sees (required for a rejection), recorded in the
    append-only ReviewDecision table and, for a staff member, the staff audit trail in
    the same transaction. The app's approved permissions follow at once. `staff` None
    means the operator on the command line."""
    if not decisions:
        raise DeveloperError("name at least one permission to approve or reject")
    cleaned: dict[str, tuple[bool, str]] = {}
    for permission, (approved, reason) in sorted(decisions.items()):
        reason = reason.strip()
        if not approved and not reason:
            raise DeveloperError(f"give the developer a reason for rejecting {permission}")
        if len(reason) > 2000:
            raise DeveloperError("keep the reason under 2000 characters")
        cleaned[permission] = (approved, reason)
    now = timezone.now()
    staff_label = staff.email if staff is not None else CLI_REVIEWER
    with transaction.atomic(durable=True):
        app = Application.objects.select_for_update().get(pk=application.pk)
        declarations = {
            d.permission: d for d in PermissionDeclaration.objects.filter(application=app)
        }
        unknown = [p for p in cleaned if p not in declarations]
        if unknown:
            raise DeveloperError(f"not declared by this app: {', '.join(unknown)}")
        basic = [p for p in cleaned if not rules.needs_review(p)]
        if basic:
            raise DeveloperError(f"basic permissions need no review: {', '.join(basic)}")
        open_request = (
            ReviewRequest.objects.filter(application=app, closed_at__isnull=True)
            .order_by("-submitted_at")
            .first()
        )
        recorded = []
        for permission, (approved, reason) in cleaned.items():
            row = declarations[permission]
            if approved and rules.needs_agreement(permission) and not _has_agreement(app):
                raise DeveloperError(f"{permission} needs the signed data-use agreement first")
            row.status = DeclarationStatus.APPROVED if approved else DeclarationStatus.REJECTED
            row.reason = reason
            row.decided_at = now
            row.save(update_fields=["status", "reason", "decided_at"])
            recorded.append(
                ReviewDecision.objects.create(
                    application=app,
                    review_request=open_request,
                    permission=permission,
                    approved=approved,
                    reason=reason,
                    staff=staff,
                    staff_email=staff_label,
                    decided_at=now,
                )
            )
        if open_request is not None and not any(
            d.status == DeclarationStatus.PENDING for d in declarations.values()
        ):
            open_request.closed_at = now
            open_request.save(update_fields=["closed_at"])
        _sync_reviewed_permissions(app)
        if staff is not None:
            _audit(staff, app, cleaned)
    return recorded


def _audit(staff: Person, app: Application, decisions: Mapping[str, tuple[bool, str]]) -> None:
    do_record_staff_action(
        staff,
        "app.review",
        f"app:{app.pk}",
        {
            p: {"approved": approved, "reason": reason}
            for p, (approved, reason) in decisions.items()
        },
    )


def _has_agreement(app: Application) -> bool:
    return SignedAgreement.objects.filter(application=app).exists()


def do_recertify_app(application: Application, person: Person, signer_name: str = "") -> None:
    """The app re-confirms its purposes (and re-signs the data-use agreement when it
    holds user_likes or user_posts) for another 12 months; a lapsed app gets its reviewed
    permissions back."""
    with transaction.atomic(durable=True):
        app = Application.objects.select_for_update().get(pk=application.pk)
        declared = PermissionDeclaration.objects.filter(application=app)
        if any(rules.needs_agreement(d.permission) for d in declared):
            _sign_agreement(app, person, signer_name)
        profile = profile_of(app)
        profile.certified_at = timezone.now()
        profile.last_reminder_days = None
        profile.lapsed_at = None
        profile.save(update_fields=["certified_at", "last_reminder_days", "lapsed_at"])
        _sync_reviewed_permissions(app)


def _sync_reviewed_permissions(app: Application) -> None:
    """Derive what the release rule reads from the declarations and certification:
    approved permissions (none while certification has lapsed), purposes, agreement."""
    declarations = list(PermissionDeclaration.objects.filter(application=app))
    profile = AppProfile.objects.filter(application=app).first()
    lapsed = profile is not None and profile.lapsed_at is not None
    statuses: Mapping[str, str] = {d.permission: d.status for d in declarations}
    app.approved_permissions = rules.reviewed_permissions(statuses, lapsed)
    app.purposes = {d.permission: d.purpose for d in declarations if d.purpose}
    latest = SignedAgreement.objects.filter(application=app).order_by("-signed_at").first()
    app.agreement_signed_at = None if latest is None or lapsed else latest.signed_at
    app.save(update_fields=["approved_permissions", "purposes", "agreement_signed_at", "updated"])
