"""The site's URL map; each capability owns the paths under its prefix (SPEC.md
"Interfaces")."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("consentry.web.urls")),
    path("accounts/", include("consentry.accounts.urls")),
    # OAuth 2.1 / OpenID Connect: /oauth/... and /.well-known/... (consentry.oauth.urls)
    path("", include("consentry.oauth.urls")),
    # Graph API: /v1/... (consentry.graph.urls)
    path("", include("consentry.graph.urls")),
    # The published ledger: /ledger/checkpoint, /ledger/tile/... (consentry.ledger.urls)
    path("ledger/", include("consentry.ledger.urls")),
    # Operations: /readyz, /metrics (consentry.ops.urls)
    path("", include("consentry.ops.urls")),
    path("admin/", admin.site.urls),
]
