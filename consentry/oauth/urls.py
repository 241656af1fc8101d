"""OAuth 2.1 / OpenID Connect endpoints under /oauth/ and the discovery documents under
/.well-known/ (docs/rules.md "Interfaces"). Names are django-oauth-toolkit's (namespace
`oauth2_provider`), so its discovery views find the endpoints."""

from django.urls import URLPattern, URLResolver, include, path, re_path
from oauth2_provider import views as dot

from consentry.oauth import views

endpoints: list[URLPattern | URLResolver] = [
    path("oauth/authorize/", views.ConsentView.as_view(), name="authorize"),
    path("oauth/token/", views.TokenView.as_view(), name="token"),
    path("oauth/revoke/", views.RevokeTokenView.as_view(), name="revoke-token"),
    path("oauth/introspect/", views.IntrospectView.as_view(), name="introspect"),
    path("oauth/userinfo/", views.UserInfoView.as_view(), name="user-info"),
    path("oauth/logout/", views.LogoutView.as_view(), name="rp-initiated-logout"),
    path("oauth/jwks/", views.json_errors(views.JwksView.as_view()), name="jwks-info"),
    # RFC 8414 and OpenID Connect Discovery 1.0 (no trailing slash, as the specs say).
    path(
        ".well-known/oauth-authorization-server",
        views.json_errors(dot.OAuthServerMetadataView.as_view()),
        name="oauth-server-metadata",
    ),
    re_path(
        r"^\.well-known/openid-configuration$",
        views.json_errors(views.DiscoveryView.as_view()),
        name="oidc-connect-discovery-info",
    ),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include((endpoints, "oauth2_provider"))),
]
