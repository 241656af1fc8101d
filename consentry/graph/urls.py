"""The Graph API owns /v1/: ninja's operations, /v1/openapi.json, /v1/docs, and a
catch-all so that unknown /v1/ paths answer in the API's error shape (the one 404)."""

from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path, re_path

from consentry.graph.api import api, json_method_errors, unknown_path
from consentry.graph.errors import error_response

# ninja's document views answer any method; they are read-only documents.
READ_ONLY = {"openapi-json", "openapi-view"}


def _read_only(view: Any) -> Any:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return error_response(405, "method_not_allowed", headers={"Allow": "GET, HEAD"})
        return view(request, *args, **kwargs)

    return wrapped


_patterns, _app_name, _namespace = api.urls
for _pattern in _patterns:
    if isinstance(_pattern, URLPattern):
        if _pattern.name == "api-root":  # ninja's /v1/ raises Http404 into Django's page
            _pattern.callback = unknown_path
        else:
            if _pattern.name in READ_ONLY:
                _pattern.callback = _read_only(_pattern.callback)
            _pattern.callback = json_method_errors(_pattern.callback)

urlpatterns: list[URLPattern | URLResolver] = [
    path("v1/", (_patterns, _app_name, _namespace)),
    re_path(r"^v1(?:/.*)?$", unknown_path),
]
