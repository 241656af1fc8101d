"""Staff console pages of detection and incident response, under /staff/ (namespace
`incidents`)."""

from django.urls import path

from consentry.incidents import views

app_name = "incidents"

urlpatterns = [
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/<int:firing_id>/clear/", views.clear_alert, name="clear-alert"),
    path("apps/", views.ranked_apps, name="apps"),
    path("apps/<int:app_id>/", views.investigation, name="investigation"),
    path("apps/<int:app_id>/charts/<slug:key>.svg", views.chart, name="chart"),
    path("apps/<int:app_id>/case/", views.open_case, name="open-case"),
    path("apps/<int:app_id>/audit/", views.require_audit, name="require-audit"),
    path("apps/<int:app_id>/attestation/", views.record_attestation, name="attestation"),
    path("apps/<int:app_id>/ban/", views.ban, name="ban"),
    path("incidents/", views.incidents, name="incidents"),
    path("incidents/<int:incident_id>/", views.incident, name="incident"),
    path("incidents/<int:incident_id>.json", views.incident_json, name="incident-json"),
    path("reports/", views.reports, name="reports"),
    path("reports/<int:report_id>/", views.report_detail, name="report-detail"),
]
