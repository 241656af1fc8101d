"""The developer console (/developers/): views parse the form, call one action, render.
Every app page goes through access.access_app_by_id (404 without a role)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from consentry.developers import actions, agreement, callbacks, rules
from consentry.developers.access import ADMINS, BUILDERS, access_app_by_id
from consentry.developers.forms import (
    AppForm,
    DeclarationsForm,
    InviteForm,
    RotateSecretForm,
    SignForm,
    TermsForm,
)
from consentry.developers.models import (
    AppInvitation,
    AppProfile,
    AppRole,
    CallbackDelivery,
    DataDeletionRequest,
    DeveloperAccount,
    PermissionDeclaration,
    ReviewDecision,
    SignedAgreement,
)
from consentry.grants.permissions import PERMISSIONS
from consentry.graph.errors import error_response
from consentry.oauth.models import Application
from consentry.people.models import Person

CREDENTIALS_TEMPLATE = "developers/secret.html"


def _person(request: HttpRequest) -> Person:
    assert isinstance(request.user, Person)
    return request.user


@login_required
def console(request: HttpRequest) -> HttpResponse:
    """The console's front page: become a developer, your apps, your invitations."""
    person = _person(request)
    account = DeveloperAccount.objects.filter(person=person).first()
    form = TermsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        actions.do_become_developer(person)
        return redirect("developers:console")
    now = timezone.now()
    roles = []
    app_ids: list[int] = []
    for role in AppRole.objects.select_related("application").filter(person=person).order_by("pk"):
        app_ids.append(role.application_id)
        profile = actions.profile_of(role.application)
        certified = profile.certified_at
        roles.append(
            {
                "role": role.role,
                "application": role.application,
                "recertify_by": rules.recertify_by(certified) if certified else None,
                "attention": rules.recertification_needs_attention(
                    certified, profile.lapsed_at is not None, now
                ),
            }
        )
    invitations = AppInvitation.objects.select_related("application").filter(
        email=person.email.lower(), accepted_at__isnull=True, withdrawn_at__isnull=True
    )
    from consentry.incidents.models import AuditRequest

    open_audits = AuditRequest.objects.filter(app_id__in=app_ids, answered_at__isnull=True).count()
    return render(
        request,
        "developers/console.html",
        {
            "account": account,
            "terms_form": form,
            "roles": roles,
            "invitations": invitations,
            "open_audits": open_audits,
        },
    )


@login_required
def new_app(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    if not DeveloperAccount.objects.filter(person=person).exists():
        return redirect("developers:console")
    form = AppForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        icon = data["icon"]
        try:
            app, secret = actions.do_register_app(
                owner=person,
                name=data["name"],
                redirect_uris=data["redirect_uris"],
                description=data["description"],
                website=data["website"],
                privacy_policy_url=data["privacy_policy_url"],
                deauthorize_callback_url=data["deauthorize_callback_url"].strip(),
                data_deletion_callback_url=data["data_deletion_callback_url"].strip(),
                icon=icon.read(actions.MAX_ICON_BYTES + 1) if icon else None,
                icon_content_type=getattr(icon, "content_type", "") if icon else "",
            )
        except actions.DeveloperError as error:
            form.add_error(None, str(error))
        else:
            return render(
                request,
                CREDENTIALS_TEMPLATE,
                {"application": app, "secret": secret, "created": True},
            )
    return render(request, "developers/app_new.html", {"form": form})


@login_required
def edit_app(request: HttpRequest, app_id: int) -> HttpResponse:
    app, _role = access_app_by_id(_person(request), app_id, ADMINS)
    profile = actions.profile_of(app)
    initial = {
        "name": app.name,
        "description": app.description,
        "redirect_uris": "\n".join(app.redirect_uris.split()),
        "website": profile.website,
        "privacy_policy_url": profile.privacy_policy_url,
        "deauthorize_callback_url": profile.deauthorize_callback_url,
        "data_deletion_callback_url": profile.data_deletion_callback_url,
    }
    form = AppForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        icon = data["icon"]
        try:
            actions.do_update_app(
                app,
                name=data["name"],
                description=data["description"],
                redirect_uris=data["redirect_uris"],
                website=data["website"],
                privacy_policy_url=data["privacy_policy_url"],
                deauthorize_callback_url=data["deauthorize_callback_url"].strip(),
                data_deletion_callback_url=data["data_deletion_callback_url"].strip(),
                icon=icon.read(actions.MAX_ICON_BYTES + 1) if icon else None,
                icon_content_type=getattr(icon, "content_type", "") if icon else "",
            )
        except actions.DeveloperError as error:
            form.add_error(None, str(error))
        else:
            return redirect("developers:app", app_id=app.pk)
    return render(
        request,
        "developers/app_edit.html",
        {"form": form, "application": app},
        status=400 if form.errors else 200,
    )


@login_required
def app_detail(request: HttpRequest, app_id: int) -> HttpResponse:
    app, role = access_app_by_id(_person(request), app_id)
    return render(request, "developers/app_detail.html", _detail_context(app, role))


def _detail_context(app: Application, role: str, **extra: Any) -> dict[str, Any]:
    profile = actions.profile_of(app)
    certified = profile.certified_at
    context: dict[str, Any] = {
        "application": app,
        "role": role,
        "is_admin": role == "admin",
        "is_builder": role in BUILDERS,
        "profile": profile,
        "declarations": PermissionDeclaration.objects.filter(application=app).order_by(
            "permission"
        ),
        "decisions": ReviewDecision.objects.filter(application=app).order_by("-decided_at")[:50],
        "agreements": SignedAgreement.objects.filter(application=app).order_by("-signed_at"),
        "roles": AppRole.objects.select_related("person").filter(application=app).order_by("pk"),
        "invitations": AppInvitation.objects.filter(
            application=app, accepted_at__isnull=True, withdrawn_at__isnull=True
        ),
        "deliveries": CallbackDelivery.objects.filter(application=app)
        .prefetch_related("attempt_log")
        .order_by("-created_at")[:50],
        "deletions": DataDeletionRequest.objects.filter(application=app).order_by("-requested_at")[
            :50
        ],
        "recertify_by": rules.recertify_by(certified) if certified else None,
        "rotate_form": RotateSecretForm(),
        "invite_form": InviteForm(),
        "sign_form": SignForm(),
        "needs_signature": PermissionDeclaration.objects.filter(
            application=app, permission__in=["user_likes", "user_posts"]
        ).exists(),
    }
    context.update(extra)
    return context


def _rerender(request: HttpRequest, app: Application, role: str, **extra: Any) -> HttpResponse:
    return render(
        request, "developers/app_detail.html", _detail_context(app, role, **extra), status=400
    )


@login_required
@require_POST
def rotate_secret(request: HttpRequest, app_id: int) -> HttpResponse:
    app, role = access_app_by_id(_person(request), app_id, ADMINS)
    form = RotateSecretForm(request.POST)
    if not form.is_valid():
        return _rerender(request, app, role, rotate_form=form)
    grace = timedelta(hours=form.cleaned_data["grace_hours"])
    secret = actions.do_rotate_client_secret(app, grace)
    return render(
        request,
        CREDENTIALS_TEMPLATE,
        {"application": app, "secret": secret, "created": False, "grace": grace},
    )


@login_required
@require_POST
def set_mode(request: HttpRequest, app_id: int) -> HttpResponse:
    app, role = access_app_by_id(_person(request), app_id, ADMINS)
    try:
        actions.do_set_app_mode(app, live=request.POST.get("mode") == "live")
    except actions.DeveloperError as error:
        return _rerender(request, app, role, mode_error=str(error))
    return redirect("developers:app", app_id=app.pk)


@login_required
@require_POST
def invite(request: HttpRequest, app_id: int) -> HttpResponse:
    person = _person(request)
    app, role = access_app_by_id(person, app_id, ADMINS)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            actions.do_invite_to_app(
                app, person, form.cleaned_data["email"], form.cleaned_data["role"]
            )
        except actions.DeveloperError as error:
            form.add_error(None, str(error))
    if form.errors:
        return _rerender(request, app, role, invite_form=form)
    return redirect("developers:app", app_id=app.pk)


@login_required
@require_POST
def remove_role(request: HttpRequest, app_id: int, person_id: int) -> HttpResponse:
    app, role = access_app_by_id(_person(request), app_id, ADMINS)
    try:
        actions.do_remove_app_role(app, person_id)
    except actions.DeveloperError as error:
        return _rerender(request, app, role, roles_error=str(error))
    return redirect("developers:app", app_id=app.pk)


@login_required
@require_POST
def accept_invitation(request: HttpRequest, invitation_id: int) -> HttpResponse:
    person = _person(request)
    invitation = AppInvitation.objects.filter(pk=invitation_id, email=person.email.lower()).first()
    if invitation is None:
        raise Http404("no such invitation")
    try:
        actions.do_accept_invitation(invitation, person)
    except actions.DeveloperError as error:
        raise Http404(str(error)) from None
    return redirect("developers:app", app_id=invitation.application_id)


@login_required
def declarations(request: HttpRequest, app_id: int) -> HttpResponse:
    person = _person(request)
    app, _role = access_app_by_id(person, app_id, BUILDERS)
    current = {
        d.permission: (d.purpose, d.retention_days)
        for d in PermissionDeclaration.objects.filter(application=app)
    }
    form = DeclarationsForm(request.POST or None, current=current)
    if request.method == "POST" and form.is_valid():
        try:
            actions.do_submit_declarations(
                app,
                person,
                form.cleaned_data["declared"],
                signer_name=form.cleaned_data["signer_name"],
                test_instructions=form.cleaned_data["test_instructions"],
            )
        except actions.DeveloperError as error:
            form.add_error(None, str(error))
        else:
            return redirect("developers:app", app_id=app.pk)
    agreement_text = agreement.signed_text(
        agreement.CURRENT_VERSION, app.name, app.client_id, "(your name)"
    )
    return render(
        request,
        "developers/declarations.html",
        {
            "application": app,
            "form": form,
            "agreement_text": agreement_text,
            "agreement_version": agreement.CURRENT_VERSION,
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def recertify(request: HttpRequest, app_id: int) -> HttpResponse:
    person = _person(request)
    app, role = access_app_by_id(person, app_id, BUILDERS)
    form = SignForm(request.POST)
    signer = form.cleaned_data["signer_name"] if form.is_valid() else ""
    try:
        actions.do_recertify_app(app, person, signer)
    except actions.DeveloperError as error:
        return _rerender(request, app, role, sign_form=form, recertify_error=str(error))
    return redirect("developers:app", app_id=app.pk)


@require_GET
def icon(request: HttpRequest, app_id: int) -> HttpResponse:
    """An app's uploaded icon (public: it appears on the consent screen)."""
    profile = AppProfile.objects.filter(application_id=app_id).exclude(icon=None).first()
    if profile is None or not profile.icon:
        raise Http404("no icon")
    response = HttpResponse(bytes(profile.icon), content_type=profile.icon_content_type)
    response["Cache-Control"] = "public, max-age=3600"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


@require_GET
def docs(request: HttpRequest) -> HttpResponse:
    rows = [
        {
            "name": p.name,
            "fields": ", ".join(sorted(p.fields)) or "the friends who also use the app",
            "review": "yes, plus the signed data-use agreement"
            if p.agreement
            else ("yes" if p.review else "no"),
        }
        for p in PERMISSIONS.values()
    ]
    return render(
        request, "developers/docs.html", {"permissions": rows, "example": _example_source()}
    )


def _example_source() -> str:
    """The signature example shown in the docs: the tested file itself."""
    return (Path(__file__).parent / "examples" / "verify_signature.py").read_text()


@require_GET
def deletion_status(request: HttpRequest, code: str) -> HttpResponse:
    """Where a person follows their data-deletion request (the code is the key)."""
    request_row = (
        DataDeletionRequest.objects.select_related("application", "delivery")
        .filter(confirmation_code=code[:64])
        .first()
    )
    if request_row is None:
        raise Http404("no such request")
    return render(request, "developers/deletion_status.html", {"deletion": request_row})


@csrf_exempt
@require_POST
def confirm_deletion(request: HttpRequest) -> HttpResponse:
    """The app's signed confirmation that it deleted a person's data (JSON body with
    `confirmation_code`; header `Consentry-Signature`; client id in `Consentry-Client-Id`)."""
    client_id = request.headers.get("Consentry-Client-Id", "")
    signature = request.headers.get(rules.SIGNATURE_HEADER, "")
    try:
        deletion = callbacks.do_confirm_data_deletion(client_id, signature, request.body)
    except callbacks.ConfirmationError as error:
        return error_response(401, "invalid_signature", str(error))
    assert deletion.completed_at is not None
    return JsonResponse(
        {
            "confirmation_code": deletion.confirmation_code,
            "completed_at": deletion.completed_at.isoformat(),
        }
    )
