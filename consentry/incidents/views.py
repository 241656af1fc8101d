"""Staff console pages for detection and incident response (`/staff/...`, staff with a
second factor only: consentry.staff.access), the public abuse report (`/report`) and the
developer's audit answer (`/developers/audits/`). Views parse input, call one function,
render."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from consentry.detection.actions import do_clear_firing
from consentry.detection.api import apps_by_risk, firings_for_app, open_alerts, samples_for_app
from consentry.detection.models import Firing
from consentry.incidents import actions
from consentry.incidents.charts import CHARTS, chart_svg
from consentry.incidents.forms import (
    AbuseReportForm,
    AttestationForm,
    AuditAnswerForm,
    AuditForm,
    BanForm,
    CaseForm,
    TriageForm,
)
from consentry.incidents.investigation import investigate
from consentry.incidents.models import AbuseReport, AuditRequest, Case, Incident
from consentry.incidents.report import incident_report
from consentry.oauth.models import Application
from consentry.staff.access import staff_required

MAX_PK = 2**63 - 1  # a larger id in a URL is simply not found (never a database error)


def _pk(value: int) -> int:
    if not 0 < value <= MAX_PK:
        raise Http404
    return value


def _app_names(ids: set[int]) -> dict[int, str]:
    return dict(Application.objects.filter(pk__in=list(ids)).values_list("pk", "name"))


# --- alerts and ranking --------------------------------------------------------------------


@staff_required
def alerts(request: HttpRequest) -> HttpResponse:
    rows = open_alerts()
    names = _app_names({r.app_id for r in rows})
    listed = [(r, names.get(r.app_id, f"app {r.app_id}")) for r in rows]
    return render(request, "incidents/alerts.html", {"alerts": listed})


@staff_required
@require_POST
def clear_alert(request: HttpRequest, firing_id: int) -> HttpResponse:
    firing = get_object_or_404(Firing, pk=_pk(firing_id))
    do_clear_firing(firing, request.user.pk)
    return redirect("incidents:alerts")


@staff_required
def ranked_apps(request: HttpRequest) -> HttpResponse:
    rows = apps_by_risk()
    names = dict(
        Application.objects.filter(pk__in=[r.app_id for r in rows]).values_list("pk", "name")
    )
    statuses = dict(
        Application.objects.filter(pk__in=[r.app_id for r in rows]).values_list("pk", "status")
    )
    listed = [
        (r, names.get(r.app_id, f"app {r.app_id}"), statuses.get(r.app_id, "deleted")) for r in rows
    ]
    return render(request, "incidents/apps.html", {"rows": listed})


# --- investigation ------------------------------------------------------------------------


def _app_or_404(app_id: int) -> Application:
    return get_object_or_404(Application, pk=_pk(app_id))


@staff_required
def investigation(request: HttpRequest, app_id: int) -> HttpResponse:
    app = _app_or_404(app_id)
    return render(
        request,
        "incidents/investigation.html",
        {
            "inv": investigate(app),
            "charts": [(key, title) for key, (title, _) in CHARTS.items()],
            "case_form": CaseForm(),
            "audit_form": AuditForm(),
            "ban_form": BanForm(),
            "attestation_form": AttestationForm(),
        },
    )


@staff_required
def chart(request: HttpRequest, app_id: int, key: str) -> HttpResponse:
    if key not in CHARTS:
        raise Http404
    app = _app_or_404(app_id)
    svg = chart_svg(key, samples_for_app(app.pk), firings_for_app(app.pk))
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = "no-store"
    return response


def _invalid(request: HttpRequest, app: Application, **forms: object) -> HttpResponse:
    """The investigation page again, with the failed form's errors in place (400)."""
    context = {
        "inv": investigate(app),
        "charts": [(key, title) for key, (title, _) in CHARTS.items()],
        "case_form": CaseForm(),
        "audit_form": AuditForm(),
        "ban_form": BanForm(),
        "attestation_form": AttestationForm(),
        **forms,
    }
    return render(request, "incidents/investigation.html", context, status=400)


@staff_required
@require_POST
def open_case(request: HttpRequest, app_id: int) -> HttpResponse:
    app = _app_or_404(app_id)
    form = CaseForm(request.POST)
    if not form.is_valid():
        return _invalid(request, app, case_form=form)
    actions.do_open_case(app, request.user.pk, form.cleaned_data["summary"])
    return redirect("incidents:investigation", app_id=app.pk)


@staff_required
@require_POST
def require_audit(request: HttpRequest, app_id: int) -> HttpResponse:
    app = _app_or_404(app_id)
    form = AuditForm(request.POST)
    if not form.is_valid():
        return _invalid(request, app, audit_form=form)
    deadline = timezone.now() + timedelta(days=form.cleaned_data["days"])
    actions.do_require_audit(app, request.user.pk, form.cleaned_data["questions"], deadline)
    return redirect("incidents:investigation", app_id=app.pk)


@staff_required
@require_POST
def record_attestation(request: HttpRequest, app_id: int) -> HttpResponse:
    app = _app_or_404(app_id)
    form = AttestationForm(request.POST)
    if not form.is_valid():
        return _invalid(request, app, attestation_form=form)
    actions.do_record_attestation(
        app, form.cleaned_data["statement"], request.user.pk, form.cleaned_data["attested_on"]
    )
    return redirect("incidents:investigation", app_id=app.pk)


@staff_required
@require_POST
def ban(request: HttpRequest, app_id: int) -> HttpResponse:
    app = _app_or_404(app_id)
    form = BanForm(request.POST)
    if not form.is_valid():
        return _invalid(request, app, ban_form=form)
    try:
        incident = actions.do_ban_app(app, request.user.pk, form.cleaned_data["reason"])
    except actions.AlreadyBanned:
        form.add_error(None, "This app is banned already.")
        return _invalid(request, app, ban_form=form)
    return redirect("incidents:incident", incident_id=incident.pk)


# --- incidents ----------------------------------------------------------------------------


@staff_required
def incidents(request: HttpRequest) -> HttpResponse:
    rows = Incident.objects.order_by("-banned_at")[:200]
    return render(request, "incidents/incidents.html", {"incidents": rows})


@staff_required
def incident(request: HttpRequest, incident_id: int) -> HttpResponse:
    row = get_object_or_404(Incident, pk=_pk(incident_id))
    return render(
        request,
        "incidents/incident.html",
        {"incident": row, "report": incident_report(row), "percent": round(row.progress * 100)},
    )


@staff_required
def incident_json(request: HttpRequest, incident_id: int) -> HttpResponse:
    row = get_object_or_404(Incident, pk=_pk(incident_id))
    return JsonResponse(incident_report(row), json_dumps_params={"indent": 2})


# --- abuse reports: staff triage ------------------------------------------------------------


@staff_required
def reports(request: HttpRequest) -> HttpResponse:
    rows = AbuseReport.objects.order_by("-created_at")[:500]
    return render(request, "incidents/reports.html", {"reports": rows})


@staff_required
def report_detail(request: HttpRequest, report_id: int) -> HttpResponse:
    report = get_object_or_404(AbuseReport, pk=_pk(report_id))
    initial = {
        "status": report.status,
        "case": report.case_id,
        "reward_amount": report.reward_amount,
        "staff_note": report.staff_note,
    }
    form = TriageForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        case = None
        if form.cleaned_data["case"]:
            case = Case.objects.filter(pk=form.cleaned_data["case"]).first()
            if case is None:
                form.add_error("case", "There is no case with that number.")
        if not form.errors:
            actions.do_triage_abuse_report(
                report,
                request.user.pk,
                status=form.cleaned_data["status"],
                case=case,
                reward_amount=form.cleaned_data["reward_amount"],
                staff_note=form.cleaned_data["staff_note"],
            )
            return redirect("incidents:report-detail", report_id=report.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "incidents/report_detail.html", {"report": report, "form": form}, status=status
    )


# --- public: /report ----------------------------------------------------------------------


def report_abuse(request: HttpRequest) -> HttpResponse:
    """Anyone may report an app (the data-abuse bounty); no account needed."""
    form = AbuseReportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        app_id, app_name = form.chosen_app()
        _, secret = actions.do_file_abuse_report(
            app_name,
            form.cleaned_data["description"],
            form.cleaned_data["contact_email"],
            app_id,
        )
        return redirect("report-status", secret=secret)
    status = 400 if request.method == "POST" else 200
    return render(request, "incidents/report_form.html", {"form": form}, status=status)


def report_status(request: HttpRequest, secret: str) -> HttpResponse:
    """The reporter's status page, reached only by the secret link."""
    if len(secret) > 100:
        raise Http404
    report = AbuseReport.objects.filter(secret_hash=AbuseReport.hash_secret(secret)).first()
    if report is None:
        raise Http404
    response = render(request, "incidents/report_status.html", {"report": report})
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"  # the URL is the secret
    return response


# --- developers: audits to answer ------------------------------------------------------------


def _developer_apps(user: object) -> list[int]:
    return list(
        Application.objects.filter(Q(user=user) | Q(members=user)).values_list("pk", flat=True)
    )


@login_required
def developer_audits(request: HttpRequest) -> HttpResponse:
    app_ids = _developer_apps(request.user)
    rows = AuditRequest.objects.filter(app_id__in=app_ids).order_by("answered_at", "deadline")
    names = _app_names(set(app_ids))
    listed = [(a, names.get(a.app_id, "")) for a in rows]
    return render(request, "incidents/developer_audits.html", {"audits": listed})


@login_required
def developer_audit(request: HttpRequest, audit_id: int) -> HttpResponse:
    audit = AuditRequest.objects.filter(
        pk=_pk(audit_id), app_id__in=_developer_apps(request.user)
    ).first()
    if audit is None:
        raise Http404
    form = AuditAnswerForm(request.POST or None, initial={"answer": audit.answer})
    if request.method == "POST" and form.is_valid():
        actions.do_answer_audit(audit, request.user.pk, form.cleaned_data["answer"])
        return redirect("developer-audit", audit_id=audit.pk)
    status = 400 if request.method == "POST" else 200
    app_name = _app_names({audit.app_id}).get(audit.app_id, "")
    return render(
        request,
        "incidents/developer_audit.html",
        {"audit": audit, "form": form, "app_name": app_name},
        status=status,
    )
