"""The site's URL map; each capability owns the paths under its prefix (SPEC.md
"Interfaces")."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("consentry.web.urls")),
    path("accounts/", include("consentry.accounts.urls")),
    path("admin/", admin.site.urls),
]
