"""Prometheus metrics (prometheus-client), served at /metrics (consentry/ops/views.py).

Counters other capabilities increment:
    count_released(subjects, fields), count_withheld(subjects, fields)  (the Graph API)
    ledger_appended()                                                  (the ledger)
    detector_fired(detector)                                           (detection)

Under `consentry serve` with several worker processes, PROMETHEUS_MULTIPROC_DIR is set
before the workers start, so every process writes its samples to files there and a
scrape of any one worker reports the sum (prometheus-client "multiprocess mode").
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

REQUEST_SECONDS = Histogram(
    "consentry_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL pattern, method and status class.",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RELEASED_SUBJECTS = Counter(
    "consentry_graph_released_subjects", "People the Graph API released data about."
)
RELEASED_FIELDS = Counter(
    "consentry_graph_released_fields", "Fields the Graph API released (per person)."
)
WITHHELD_SUBJECTS = Counter(
    "consentry_graph_withheld_subjects", "Friends the release rule withheld from a page."
)
WITHHELD_FIELDS = Counter(
    "consentry_graph_withheld_fields", "Requested fields the release rule withheld."
)
LEDGER_APPENDS = Counter("consentry_ledger_appends", "Call records committed to the ledger.")
DETECTOR_FIRINGS = Counter(
    "consentry_detector_firings", "Times a detector fired, by detector.", ["detector"]
)


def count_released(subjects: int, fields: int) -> None:
    RELEASED_SUBJECTS.inc(subjects)
    RELEASED_FIELDS.inc(fields)


def count_withheld(subjects: int, fields: int) -> None:
    WITHHELD_SUBJECTS.inc(subjects)
    WITHHELD_FIELDS.inc(fields)


def ledger_appended() -> None:
    LEDGER_APPENDS.inc()


def detector_fired(detector: str) -> None:
    DETECTOR_FIRINGS.labels(detector=detector).inc()


def task_queue_depth() -> dict[str, int]:
    """Tasks waiting to run, per queue: RQ's queues when the Tasks API runs on RQ, else
    the database backend's ready rows. Empty when neither is installed."""
    from django.conf import settings

    depth: dict[str, int] = {}
    tasks = getattr(settings, "TASKS", {}) or {}
    for alias, conf in tasks.items():
        backend = str(conf.get("BACKEND", ""))
        queues = conf.get("QUEUES") or ["default"]
        try:
            if "rq" in backend.lower():
                import django_rq

                for name in queues:
                    depth[f"{alias}:{name}"] = int(django_rq.get_queue(name).count)
            elif "database" in backend.lower():
                from django_tasks_db.models import DBTaskResult

                ready = DBTaskResult.objects.filter(status="READY", backend_name=alias)
                for name in queues:
                    depth[f"{alias}:{name}"] = ready.filter(queue_name=name).count()
        except Exception:
            depth[f"{alias}:unavailable"] = -1
    return depth


class _QueueDepth(Collector):
    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "consentry_task_queue_depth", "Tasks waiting to run, per queue.", labels=["queue"]
        )
        for queue, depth in sorted(task_queue_depth().items()):
            family.add_metric([queue], depth)
        yield family


def exposition() -> bytes:
    """The metrics text for one scrape (all worker processes in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    extra.register(_QueueDepth())
    return body + generate_latest(extra)
