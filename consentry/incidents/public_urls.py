"""Public and developer-facing paths of incident response: the abuse report form
(`/report`), its secret status link, and the developer's audits to answer."""

from django.urls import path

from consentry.incidents import views

urlpatterns = [
    path("report", views.report_abuse, name="report-abuse"),
    path("report/status/<str:secret>/", views.report_status, name="report-status"),
    path("developers/audits/", views.developer_audits, name="developer-audits"),
    path("developers/audits/<int:audit_id>/", views.developer_audit, name="developer-audit"),
]
