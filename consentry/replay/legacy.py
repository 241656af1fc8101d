"""Graph API v1.0's friends rule (2010-2015), for the replay's comparison only.

Under v1.0 an app that an installer allowed the `friends_*` permissions received those
fields of every friend whose audience let the installer see them: the friend was never
asked. `legacy_release` is that rule, written like consentry.graph.release.release (same
facts in, same answer type out) so that the Graph API views run unchanged around it.

This is NOT a product setting. No setting, environment variable or URL reaches it: the
only way in is `legacy_release_rule()`, a context manager that the replay runner
(consentry.replay.runner) enters in its own process, against its own demo database, for
the length of the legacy run. `consentry serve` never imports this module
(tests/test_replay.py checks that).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from consentry.grants.permissions import PERMISSION_FOR_FIELD
from consentry.graph import access
from consentry.graph import release as rules


def legacy_release(
    app: rules.AppFacts,
    viewer: rules.ViewerFacts,
    subject: rules.SubjectFacts,
    requested: frozenset[str],
) -> frozenset[str]:
    """v1.0: the installer's consent alone releases a friend's fields (within the friend's
    audience); rules 1, 2 and 4 still apply to the installer and the app."""
    if subject.relation is not rules.Relation.FRIEND:
        return rules.release(app, viewer, subject, requested)
    if not rules.may_list_friends(app, viewer):
        return rules.NOTHING
    released = {
        f
        for f in requested
        if f != rules.ID_FIELD
        and f not in rules.NEVER_ABOUT_OTHERS
        and rules.covers(app, viewer, PERMISSION_FOR_FIELD[f])
        and rules.audience_lets_friend_see(subject.audience.get(f))
    }
    if rules.ID_FIELD in requested:
        released.add(rules.ID_FIELD)  # every friend is listed
    return frozenset(released)


@contextmanager
def legacy_release_rule() -> Iterator[None]:
    """Run the body with the Graph API deciding by `legacy_release` (module docstring)."""
    real = access.release
    access.release = legacy_release
    try:
        yield
    finally:
        access.release = real
