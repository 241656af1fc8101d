"""/readyz (ready for traffic: database, Redis, migrations) and /metrics (Prometheus)."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from consentry import config
from consentry.ops import metrics

_migrated = False  # once every migration is applied, it stays so for this process


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _redis() -> str:
    if not settings.CONFIG.redis_url:
        return "not configured"
    client = cache._cache.get_client()  # type: ignore[attr-defined]  # django RedisCache
    client.ping()
    return "ok"


def _migrations() -> str:
    global _migrated
    if not _migrated:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            return f"{len(plan)} pending"
        _migrated = True
    return "ok"


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """503 until the database answers, Redis (when configured) answers and every
    migration is applied; a load balancer sends traffic only after a 200."""
    checks: dict[str, str] = {}
    for name, check in (("database", _database), ("redis", _redis), ("migrations", _migrations)):
        try:
            checks[name] = check()
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(v in {"ok", "not configured"} for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503
    )


def _loopback(request: HttpRequest) -> bool:
    # Behind a reverse proxy on the same host every request comes from loopback: a
    # forwarded request is the outside world and needs the token.
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def _authorized(request: HttpRequest) -> bool:
    token = config.env("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[7:].encode(), token.encode())
    return _loopback(request)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, from loopback or with `Authorization: Bearer
    <CONSENTRY_METRICS_TOKEN>`; anyone else gets the same 404 as an unknown path."""
    if not _authorized(request):
        return HttpResponse("not found\n", status=404, content_type="text/plain")
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
