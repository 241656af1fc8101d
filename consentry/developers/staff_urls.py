"""/staff/reviews/: app review by staff (included from consentry.staff.urls)."""

from django.urls import path

from consentry.developers import staff_views

urlpatterns = [
    path("", staff_views.review_list, name="staff-reviews"),
    path("<int:app_id>/", staff_views.review_detail, name="staff-review"),
]
