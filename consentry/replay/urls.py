from django.urls import path

from consentry.replay import views

app_name = "replay"
urlpatterns = [
    path("report", views.report_page, name="report"),
    path("report.json", views.report_json, name="report-json"),
    path("report/<slug:name>.svg", views.report_chart, name="chart"),
]
