"""The Graph API owns /v1/: ninja's operations, /v1/openapi.json, /v1/docs, and a
catch-all so that unknown /v1/ paths answer in the API's error shape (the one 404)."""

from django.urls import URLPattern, URLResolver, path, re_path

from consentry.graph.api import api, json_method_errors, unknown_path

_patterns, _app_name, _namespace = api.urls
for _pattern in _patterns:
    if isinstance(_pattern, URLPattern):
        if _pattern.name == "api-root":  # ninja's /v1/ raises Http404 into Django's page
            _pattern.callback = unknown_path
        else:
            _pattern.callback = json_method_errors(_pattern.callback)

urlpatterns: list[URLPattern | URLResolver] = [
    path("v1/", (_patterns, _app_name, _namespace)),
    re_path(r"^v1(?:/.*)?$", unknown_path),
]
