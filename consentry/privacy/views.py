"""The privacy center's pages. Views parse input, call one query or action, render.

Every URL that names something of a person's (an app grant, a ledger entry, an export, a
deletion request, a notice, a friend's route) goes through an `access_*` function that
answers 404 for anything that is not the signed-in person's: unknown and forbidden look
the same."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.db import IntegrityError
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from consentry.grants.actions import (
    do_close_route,
    do_reopen_route,
    do_revoke_permission,
    do_update_sharing,
)
from consentry.grants.models import ClosedRoute, Consent
from consentry.grants.permissions import PERMISSIONS, RELEASE_BIT
from consentry.ledger.api import inclusion_proof, read_entry
from consentry.ledger.proof_file import proof_json
from consentry.oauth.consent import LABELS as PERMISSION_LABELS
from consentry.oauth.models import Application
from consentry.people.fields import FIELD_BIT, PROFILE_FIELDS
from consentry.people.models import Friendship, Person
from consentry.privacy import history
from consentry.privacy.actions import (
    ExportAlreadyRunning,
    do_change_email,
    do_delete_account,
    do_remove_app,
    do_start_export,
    export_dir,
)
from consentry.privacy.forms import DeleteAccountForm, EmailForm, HistoryFilterForm, SharingForm
from consentry.privacy.labels import FIELD_LABELS, STATUS_LABELS, field_list
from consentry.privacy.models import DataExport, DeletionRequest
from consentry.privacy.transparency import app_card

TABS = ("active", "expired", "removed")


def _person(request: HttpRequest) -> Person:
    user = request.user
    assert isinstance(user, Person)
    return user


# --- access functions: 404 for anything not the person's ---------------------------------


def access_consent_by_app_id(person: Person, app_id: int) -> Consent:
    consent = (
        Consent.objects.select_related("application")
        .filter(person=person, application_id=app_id)
        .first()
    )
    if consent is None:
        raise Http404
    return consent


def access_friend_by_id(person: Person, friend_id: int) -> Person:
    if not Friendship.objects.filter(person_id=person.pk, friend_id=friend_id).exists():
        raise Http404
    return Person.objects.get(pk=friend_id)


def access_entry_by_index(person: Person, index: int) -> int:
    if not history.is_about(person.pk, index):
        raise Http404
    return index


def access_export_by_id(person: Person, export_id: int) -> DataExport:
    export = DataExport.objects.filter(person=person, pk=export_id).first()
    if export is None:
        raise Http404
    return export


def access_deletion_by_code(person: Person, code: str) -> DeletionRequest:
    found = DeletionRequest.objects.filter(person=person, code=code).first()
    if found is None:
        raise Http404
    return found


# --- helpers ------------------------------------------------------------------------------


def _app_names(ids: set[int]) -> dict[int, str]:
    return dict(Application.objects.filter(pk__in=ids).values_list("pk", "name"))


def _person_names(ids: set[int]) -> dict[int, str]:
    return dict(Person.objects.filter(pk__in=ids).values_list("pk", "name"))


def _describe(
    read: history.Read, person: Person, apps: dict[int, str], people: dict[int, str]
) -> dict[str, Any]:
    """One timeline line, worded here rather than in the template: a page has 50 of them
    and this is several times cheaper than template tags per line (bench/history_page.py)."""
    app = apps.get(read.app_id) or _("a removed app (number %(n)s)") % {"n": read.app_id}
    moment = timezone.localtime(read.created_at)
    words = {
        "app": app,
        "fields": field_list(read.fields),
        "date": date_format(moment, "j F Y"),
        "time": time_format(moment, "H:i"),
    }
    if read.actor_id == person.pk:
        sentence = _("%(app)s read your %(fields)s on %(date)s at %(time)s, through you") % words
    else:
        words["friend"] = people.get(read.actor_id) or _("a former member")
        through_friend = _(
            "%(app)s read your %(fields)s on %(date)s at %(time)s, through your friend %(friend)s"
        )
        sentence = through_friend % words
    return {
        "index": read.index,
        "sentence": sentence,
        "proof_label": _("Proof for entry %(n)s (JSON)") % {"n": read.index},
        "proof_url": f"{reverse('privacy:activity')}{read.index}/proof.json",
    }


def _consent_rows(consents: list[Consent]) -> list[dict[str, Any]]:
    now = timezone.now()
    rows = []
    for consent in consents:
        app = consent.application
        perms = sorted(
            consent.permissions.all(), key=lambda p: list(PERMISSIONS).index(p.permission)
        )
        rows.append(
            {
                "consent": consent,
                "app": app,
                "developer": app.user.name if app.user_id else "",
                "status": STATUS_LABELS.get(app.status, app.status),
                "active": consent.is_active(now),
                "permissions": [
                    {
                        "name": p.permission,
                        "label": PERMISSION_LABELS.get(p.permission, p.permission),
                        "purpose": p.purpose_shown,
                        "granted_at": p.granted_at,
                        "revoked_at": p.revoked_at,
                    }
                    for p in perms
                ],
            }
        )
    return rows


# --- pages --------------------------------------------------------------------------------


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    now = timezone.now()
    active = list(
        Consent.objects.filter(person=person, revoked_at__isnull=True, expires_at__gt=now)
        .select_related("application")
        .order_by("application__name")
    )
    summary = history.recent_summary(person.pk)
    apps = _app_names({a for a, _ in summary.by_app})
    people = _person_names({f for f, _ in summary.through})
    context = {
        "active": active,
        "summary": summary,
        "by_app": [(apps.get(a) or f"#{a}", n) for a, n in summary.by_app],
        "through": [(people.get(f) or _("a former member"), n) for f, n in summary.through],
        "unread": _unread_notices(person),
    }
    return render(request, "privacy/home.html", context)


def _unread_notices(person: Person) -> int:
    try:
        from consentry.notices.models import Notice
    except ImportError:  # pragma: no cover - the notices app ships with Foundations
        return 0
    return Notice.objects.filter(person=person, read_at__isnull=True).count()


@login_required
@require_GET
def apps(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    tab = request.GET.get("tab", "active")
    if tab not in TABS:
        tab = "active"
    now = timezone.now()
    qs = Consent.objects.filter(person=person).select_related("application", "application__user")
    if tab == "active":
        qs = qs.filter(revoked_at__isnull=True, expires_at__gt=now)
    elif tab == "expired":
        qs = qs.filter(revoked_at__isnull=True, expires_at__lte=now)
    else:
        qs = qs.filter(revoked_at__isnull=False)
    rows = _consent_rows(list(qs.prefetch_related("permissions").order_by("application__name")))
    return render(request, "privacy/apps.html", {"tab": tab, "tabs": TABS, "rows": rows})


@login_required
@require_POST
def revoke_permission(request: HttpRequest, app_id: int, permission: str) -> HttpResponse:
    person = _person(request)
    consent = access_consent_by_app_id(person, app_id)
    if permission not in PERMISSIONS or not consent.is_active():
        raise Http404
    do_revoke_permission(consent, permission)
    messages.success(
        request,
        _("%(app)s no longer has: %(what)s.")
        % {"app": consent.application.name, "what": PERMISSION_LABELS[permission]},
    )
    return redirect(reverse("privacy:apps"))


@login_required
@require_POST
def remove_app(request: HttpRequest, app_id: int) -> HttpResponse:
    person = _person(request)
    consent = access_consent_by_app_id(person, app_id)
    ask = request.POST.get("delete") == "1"
    if consent.revoked_at is not None and not ask:
        return redirect(reverse("privacy:apps") + "?tab=removed")
    deletion = do_remove_app(person, consent, ask_deletion=ask)
    if deletion is not None:
        return redirect(reverse("privacy:deletion", args=[deletion.code]))
    messages.success(
        request,
        _("%(app)s was removed. Its access ended at once.") % {"app": consent.application.name},
    )
    return redirect(reverse("privacy:apps"))


@login_required
@require_GET
def deletion(request: HttpRequest, code: str) -> HttpResponse:
    found = access_deletion_by_code(_person(request), code)
    return render(request, "privacy/deletion.html", {"deletion": found})


@login_required
@require_GET
def activity(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    form = HistoryFilterForm(request.GET or None)
    friends = list(
        Friendship.objects.filter(person_id=person.pk)
        .order_by("friend__name")
        .values_list("friend_id", "friend__name")[:1000]
    )
    status = 200
    page = None
    filters = history.HistoryFilter()
    before = None
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        data = form.cleaned_data if form.is_bound else {}
        tz = timezone.get_current_timezone()
        since = data.get("since")
        until = data.get("until")
        filters = history.HistoryFilter(
            app_id=data.get("app"),
            field=data.get("field") or None,
            friend_id=data.get("friend"),
            since=datetime.combine(since, time.min, tz) if since else None,
            until=datetime.combine(until, time.max, tz) if until else None,
        )
        before = data.get("before")
        page = history.history_page(person.pk, filters, before=before)
    app_options = _app_options(person, page)
    reads = []
    next_url = None
    if page is not None:
        apps_ = _app_names(page.app_ids)
        people = _person_names(page.actor_ids - {person.pk})
        reads = [_describe(r, person, apps_, people) for r in page.reads]
        if page.next_before is not None:
            query = request.GET.copy()
            query["before"] = str(page.next_before)
            next_url = "?" + query.urlencode()
    context = {
        "form": form,
        "reads": reads,
        "next_url": next_url,
        "first_page": before is None,
        "friends": friends,
        "app_options": app_options,
        "filters": filters,
        "field_labels": FIELD_LABELS,
    }
    return render(request, "privacy/activity.html", context, status=status)


def _app_options(person: Person, page: history.HistoryPage | None) -> list[tuple[int, str]]:
    """Apps to filter by: the person's own grants and the apps on the current page (any
    other app id still works in the URL)."""
    ids = set(Consent.objects.filter(person=person).values_list("application_id", flat=True))
    if page is not None:
        ids |= page.app_ids
    return sorted(_app_names(ids).items(), key=lambda item: item[1].lower())


@login_required
@require_GET
def proof(request: HttpRequest, index: int) -> HttpResponse:
    person = _person(request)
    access_entry_by_index(person, index)
    body = proof_json(read_entry(index), inclusion_proof(index), person.pk)
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="consentry-proof-{index}.json"'
    return response


@login_required
@require_GET
def friends(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    closed = set(ClosedRoute.objects.filter(person=person).values_list("through_id", flat=True))
    rows = [
        {"id": fid, "name": name, "closed": fid in closed}
        for fid, name in Friendship.objects.filter(person_id=person.pk)
        .order_by("friend__name")
        .values_list("friend_id", "friend__name")
    ]
    return render(request, "privacy/friends.html", {"rows": rows})


@login_required
@require_POST
def friend_route(request: HttpRequest, friend_id: int) -> HttpResponse:
    person = _person(request)
    friend = access_friend_by_id(person, friend_id)
    if request.POST.get("route") == "open":
        do_reopen_route(person, friend.pk)
        messages.success(
            request, _("Apps may again get your data through %(name)s.") % {"name": friend.name}
        )
    else:
        do_close_route(person, friend.pk)
        messages.success(
            request, _("Apps may no longer get your data through %(name)s.") % {"name": friend.name}
        )
    return redirect(reverse("privacy:friends"))


@login_required
@require_http_methods(["GET", "POST"])
def sharing(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    initial: dict[str, Any] = {}
    for name in PROFILE_FIELDS:
        initial[f"audience_{name}"] = person.audience(name).value
        initial[f"share_{name}"] = person.shares_with_friends_apps(name)
    form = SharingForm(request.POST if request.method == "POST" else None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            do_update_sharing(
                person,
                {name: data[f"audience_{name}"] for name in PROFILE_FIELDS},
                [name for name in PROFILE_FIELDS if data.get(f"share_{name}")],
            )
            messages.success(
                request,
                _("Your sharing settings are saved. They apply from the next app request on."),
            )
            return redirect(reverse("privacy:sharing"))
        status = 400
    through = history.apps_through_friends(person.pk)
    names = _app_names(set(through))
    rows = [
        {
            "name": name,
            "label": FIELD_LABELS[name],
            "audience": form[f"audience_{name}"],
            "share": form[f"share_{name}"] if name != "email" else None,
            "bit": FIELD_BIT[name],
        }
        for name in PROFILE_FIELDS
    ]
    context = {
        "form": form,
        "rows": rows,
        "through_apps": sorted((names.get(a) or f"#{a}", n) for a, n in through.items()),
    }
    return render(request, "privacy/sharing.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def export(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    if request.method == "POST":
        try:
            do_start_export(person)
        except ExportAlreadyRunning:
            messages.error(request, _("An export is already being prepared. Please wait for it."))
        return redirect(reverse("privacy:export"))
    jobs = list(DataExport.objects.filter(person=person).order_by("-created_at")[:5])
    running = any(j.is_unfinished() for j in jobs)
    return render(request, "privacy/export.html", {"jobs": jobs, "running": running})


@login_required
@require_GET
def export_download(request: HttpRequest, export_id: int) -> FileResponse:
    found = access_export_by_id(_person(request), export_id)
    if not found.is_downloadable():
        raise Http404
    path = export_dir() / found.file_name
    if not path.is_file():
        raise Http404
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"consentry-data-{found.created_at:%Y-%m-%d}.zip",
        content_type="application/zip",
    )


@login_required
@require_GET
def notices(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    try:
        from consentry.notices.models import Notice
    except ImportError:  # pragma: no cover - the notices app ships with Foundations
        items: list[Any] = []
    else:
        items = list(Notice.objects.filter(person=person).order_by("-created_at")[:200])
    return render(request, "privacy/notices.html", {"notices": items})


@login_required
@require_POST
def notice_read(request: HttpRequest, notice_id: int) -> HttpResponse:
    from consentry.notices.models import Notice

    updated = Notice.objects.filter(Q(person=_person(request)), pk=notice_id).update(
        read_at=timezone.now()
    )
    if not updated:
        raise Http404
    return redirect(reverse("privacy:notices"))


@login_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    action = request.POST.get("action") if request.method == "POST" else None
    password_form = PasswordChangeForm(person, request.POST if action == "password" else None)
    email_form = EmailForm(request.POST if action == "email" else None)
    delete_form = DeleteAccountForm(request.POST if action == "delete" else None)
    status = 200
    if action == "password":
        if password_form.is_valid():
            password_form.save()
            update_session_auth_hash(request, person)
            messages.success(request, _("Your password was changed."))
            return redirect(reverse("privacy:account"))
        status = 400
    elif action == "email":
        if email_form.is_valid():
            email = email_form.cleaned_data["email"].lower()
            if not person.check_password(email_form.cleaned_data["password"]):
                email_form.add_error("password", _("That is not your password."))
            elif Person.objects.filter(email=email).exclude(pk=person.pk).exists():
                email_form.add_error("email", _("This address cannot be used."))
            else:
                try:
                    do_change_email(person, email)
                except IntegrityError:  # taken between the check and the write
                    email_form.add_error("email", _("This address cannot be used."))
                else:
                    messages.success(request, _("Your email address was changed."))
                    return redirect(reverse("privacy:account"))
        status = 400
    elif action == "delete":
        if delete_form.is_valid():
            if not person.check_password(delete_form.cleaned_data["password"]):
                delete_form.add_error("password", _("That is not your password."))
            elif Application.objects.filter(user=person).exists():
                # Deleting the person would delete their apps and everyone's grants to them.
                delete_form.add_error(
                    None, _("You still own apps. Hand them over or delete them first.")
                )
            else:
                do_delete_account(person)
                logout(request)
                return render(request, "privacy/deleted.html")
        status = 400
    elif action is not None:
        status = 400
    context = {"password_form": password_form, "email_form": email_form, "delete_form": delete_form}
    return render(request, "privacy/account.html", context, status=status)


@require_GET
def transparency(request: HttpRequest, app_id: int) -> HttpResponse:
    """The public card of an app (/apps/<id>): no sign-in."""
    card = app_card(app_id)
    if card is None:
        raise Http404
    return render(request, "privacy/app_card.html", {"card": card, "release_bit": RELEASE_BIT})
