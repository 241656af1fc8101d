"""The site's URL map; each capability owns the paths under its prefix (SPEC.md
"Interfaces")."""

from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite

# The admin asks staff for their second factor too (django-otp).
admin.site.__class__ = OTPAdminSite

urlpatterns = [
    path("", include("consentry.web.urls")),
    path("accounts/", include("consentry.accounts.urls")),
    # OAuth 2.1 / OpenID Connect: /oauth/... and /.well-known/... (consentry.oauth.urls)
    path("", include("consentry.oauth.urls")),
    # Graph API: /v1/... (consentry.graph.urls)
    path("", include("consentry.graph.urls")),
    path("staff/", include("consentry.staff.urls")),
    path("admin/", admin.site.urls),
]

# Django's own refusals in each endpoint's error shape (consentry.web.refusals).
handler400 = "consentry.web.refusals.bad_request"
