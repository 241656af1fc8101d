"""The site's URL map; each capability owns the paths under its prefix (docs/rules.md
"Interfaces")."""

from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite

from consentry.privacy.urls import public_urlpatterns

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
    path("developers/", include("consentry.developers.urls")),
    path("privacy/", include("consentry.privacy.urls")),
    # The public transparency card of each app: /apps/<id> (consentry.privacy)
    path("", include((public_urlpatterns, "public"))),
    # Detection and incident response: /staff/alerts/, /staff/apps/..., /report, audits
    path("staff/", include("consentry.incidents.urls")),
    path("", include("consentry.incidents.public_urls")),
    # The published ledger: /ledger/checkpoint, /ledger/tile/... (consentry.ledger.urls)
    path("ledger/", include("consentry.ledger.urls")),
    # Operations: /readyz, /metrics (consentry.ops.urls)
    path("", include("consentry.ops.urls")),
    # The Cambridge Analytica replay's report: /demo/report (consentry.replay.urls)
    path("demo/", include("consentry.replay.urls")),
    path("admin/", admin.site.urls),
]

# Django's own refusals in each endpoint's error shape (consentry.web.refusals).
handler400 = "consentry.web.refusals.bad_request"
handler500 = "consentry.web.refusals.server_error"
