"""/demo/report: the replay's report as a page with charts, as JSON, and the charts."""

from __future__ import annotations

from functools import lru_cache

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from consentry.replay import charts
from consentry.replay.models import ReplayReport
from consentry.replay.report import bar, cell, rows


def _latest() -> ReplayReport | None:
    return ReplayReport.objects.order_by("-pk").first()


@require_GET
def report_page(request: HttpRequest) -> HttpResponse:
    latest = _latest()
    if latest is None:
        return render(request, "replay/report.html", {"report": None}, status=404)
    report = latest.report
    people = report["world"].get("people", 0)
    table = [
        {
            "label": str(row.label).strip(),
            "indent": str(row.label).startswith(" "),
            "explain": row.explain,
            "cells": [
                {
                    "text": cell(row.value(p)),
                    "bar": bar(row.value(p), people) if row.bar else "",
                }
                for p in report["policies"]
            ],
        }
        for row in rows()
    ]
    return render(
        request,
        "replay/report.html",
        {"report": report, "table": table, "charts": charts.CHARTS, "version": latest.pk},
    )


@require_GET
def report_json(request: HttpRequest) -> HttpResponse:
    latest = _latest()
    if latest is None:
        return JsonResponse(
            {"error": {"code": "not_found", "message": "No replay has run here.", "status": 404}},
            status=404,
        )
    return JsonResponse(latest.report, json_dumps_params={"indent": 1})


@lru_cache(maxsize=8)
def _chart(version: int, name: str) -> bytes:
    """A chart of report `version` (reports are never edited, so the pk is the key)."""
    return charts.chart(name, ReplayReport.objects.get(pk=version).report)


@require_GET
def report_chart(request: HttpRequest, name: str) -> HttpResponse:
    latest = _latest()
    if latest is None or name not in charts.CHARTS:
        raise Http404
    response = HttpResponse(_chart(latest.pk, name), content_type="image/svg+xml")
    response["Cache-Control"] = "max-age=60"
    return response
