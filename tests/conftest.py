"""Shared fixtures. Every database test runs on SQLite and on PostgreSQL
(scripts/run-tests runs the suite once per database)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings

from consentry.people.models import Person

# Examples are checked for what they prove, not timed: a shared CI machine can stall any
# one of them (speed is measured in bench/, as ratios).
settings.register_profile("consentry", deadline=None, print_blob=True)
settings.load_profile("consentry")

_counter = itertools.count(1)


@pytest.fixture
def make_person(db: None) -> Callable[..., Person]:
    """Create a person; keyword arguments set profile fields and audiences."""

    def make(**fields: Any) -> Person:
        n = next(_counter)
        fields.setdefault("name", f"Person {n}")
        email = fields.pop("email", f"person{n}@example.test")
        password = fields.pop("password", "correct horse battery staple")
        return Person.objects.create_user(email=email, password=password, **fields)

    return make


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks: Any) -> Callable[[], int]:
    """Run background tasks the way a worker would, in this process: first whatever the
    test's (never committed) transaction queued on commit, then every ready task until
    none are left. Returns how many tasks ran."""
    from django.db import connection

    from consentry.web.worker import run_ready_tasks

    def run() -> int:
        # pytest-django wraps `db` tests in a transaction that never commits, so callbacks
        # queued with transaction.on_commit() are run here, as a commit would.
        while connection.run_on_commit:
            callbacks = list(connection.run_on_commit)
            connection.run_on_commit.clear()
            for _savepoints, callback, _robust in callbacks:
                callback()
        return run_ready_tasks()

    return run


@pytest.fixture(autouse=True)
def _fresh_detector() -> Any:
    """Harvest detection keeps per-app state in this process; a rolled-back test's app ids
    are reused by the next test, so each test starts with none (consentry.detection)."""
    from consentry.detection.engine import detector

    detector().forget()
    yield
    detector().forget()


@pytest.fixture(autouse=True)
def _fresh_local_cache() -> None:
    """Rate-limit windows, throttles and client-auth counters live in Django's cache, keyed
    by app and token ids; a rolled-back test's ids are reused by the next test, so each test
    starts with an empty in-process cache (a shared Redis is never flushed: tests that use
    it take a key prefix of their own)."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    for cache in caches.all(initialized_only=True):
        if isinstance(cache, LocMemCache):
            cache.clear()


# axe-core for the browser tests (tests/axe.py), one install per session.
from tests.axe import axe_script  # noqa: E402, F401
