"""Staff review of apps at /staff/reviews/ (every view behind staff_required: verified
staff with a second factor; anyone else gets 404)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from consentry.developers import actions, rules
from consentry.developers.models import (
    AppRole,
    CallbackDelivery,
    DataDeletionRequest,
    DeclarationStatus,
    PermissionDeclaration,
    ReviewDecision,
    SignedAgreement,
)
from consentry.oauth.models import Application
from consentry.people.models import Person
from consentry.staff.access import staff_required


@staff_required
def review_list(request: HttpRequest) -> HttpResponse:
    apps = (
        Application.objects.annotate(
            pending=Count("declarations", filter=Q(declarations__status="pending"))
        )
        .filter(declarations__isnull=False)
        .distinct()
        .order_by("-pending", "name")
        .select_related("developer_profile")
    )
    return render(request, "developers/staff_reviews.html", {"apps": apps})


class DecisionForm(forms.Form):
    """One decision and reason per pending (or any reviewable) declared permission."""

    def __init__(self, *args: Any, permissions: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.permissions = permissions
        for perm in permissions:
            self.fields[f"decision_{perm}"] = forms.ChoiceField(
                required=False,
                choices=[("", "no decision"), ("approve", "approve"), ("reject", "reject")],
                widget=forms.RadioSelect,
                label=perm,
            )
            self.fields[f"reason_{perm}"] = forms.CharField(
                required=False, max_length=2000, label="Reason (the developer sees it)"
            )

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"permission": p, "decision": self[f"decision_{p}"], "reason": self[f"reason_{p}"]}
            for p in self.permissions
        ]

    def decisions(self) -> dict[str, tuple[bool, str]]:
        chosen = {}
        for perm in self.permissions:
            verdict = self.cleaned_data.get(f"decision_{perm}")
            if verdict:
                chosen[perm] = (verdict == "approve", self.cleaned_data.get(f"reason_{perm}", ""))
        return chosen


@staff_required
def review_detail(request: HttpRequest, app_id: int) -> HttpResponse:
    app = Application.objects.filter(pk=app_id).first()
    if app is None:
        raise Http404
    declarations = list(
        PermissionDeclaration.objects.filter(application=app).order_by("permission")
    )
    reviewable = [d.permission for d in declarations if rules.needs_review(d.permission)]
    form = DecisionForm(request.POST or None, permissions=reviewable)
    if request.method == "POST" and form.is_valid():
        assert isinstance(request.user, Person)
        try:
            actions.do_decide_permissions(app, request.user, form.decisions())
        except actions.DeveloperError as error:
            form.add_error(None, str(error))
        else:
            return redirect("staff-review", app_id=app.pk)
    profile = actions.profile_of(app)
    context = {
        "application": app,
        "profile": profile,
        "declarations": declarations,
        "pending": [d for d in declarations if d.status == DeclarationStatus.PENDING],
        "form": form,
        "agreements": SignedAgreement.objects.filter(application=app).order_by("-signed_at"),
        "decisions": ReviewDecision.objects.filter(application=app).order_by("-decided_at"),
        "request_row": app.review_requests.order_by("-submitted_at").first(),
        "roles": AppRole.objects.select_related("person").filter(application=app),
        "deliveries": CallbackDelivery.objects.filter(application=app)
        .prefetch_related("attempt_log")
        .order_by("-created_at")[:50],
        "deletions": DataDeletionRequest.objects.filter(application=app).order_by("-requested_at")[
            :50
        ],
        "recertify_by": rules.recertify_by(profile.certified_at) if profile.certified_at else None,
    }
    return render(
        request,
        "developers/staff_review.html",
        context,
        status=400 if form.errors else 200,
    )
