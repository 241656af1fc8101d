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
