"""Shared fixtures. Every database test runs on SQLite and on PostgreSQL
(scripts/run-tests runs the suite once per database)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from consentry.people.models import Person

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
