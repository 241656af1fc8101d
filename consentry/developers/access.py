"""Who may see and change an app in the developer console: one place, one answer (404)
for unknown apps and apps the person has no (sufficient) role on."""

from __future__ import annotations

from collections.abc import Collection

from django.http import Http404

from consentry.developers.models import AppRole, Role
from consentry.oauth.models import Application
from consentry.people.models import Person

ANY_ROLE: frozenset[str] = frozenset(Role.values)
BUILDERS: frozenset[str] = frozenset({Role.ADMIN, Role.DEVELOPER})
ADMINS: frozenset[str] = frozenset({Role.ADMIN})


def access_app_by_id(
    person: Person, app_id: int, roles: Collection[str] = ANY_ROLE
) -> tuple[Application, str]:
    """The app and the person's role on it, if that role is one of `roles`; else 404."""
    row = (
        AppRole.objects.select_related("application")
        .filter(application_id=app_id, person=person, role__in=list(roles))
        .first()
    )
    if row is None:
        raise Http404("no such app")
    return row.application, row.role
