"""`/staff/`: every page here is wrapped in staff_required (404 for everyone else)."""

from django.urls import path

from consentry.staff import views

urlpatterns = [
    path("", views.index, name="staff-index"),
]
