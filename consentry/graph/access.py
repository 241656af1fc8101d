"""Permission-checked reads of the Graph API: the imperative shell around the release rule.

Every read follows the same path (docs/architecture.md): bearer token -> caller (app,
person, active grant) -> rate limits -> fetch the rows -> `release()` per subject ->
ledger entry -> response body. The ledger entry is written last and committed before the
body is returned (`_read_transaction`): `record_disclosure` raising means no data leaves.

Speed matters on /me/friends (5,000 friends is a legitimate page; bench/read_friends.py):
the page is one query, friendship -> person LEFT JOIN the friend's active consent to the
app, whose stored `permission_mask` is their grant as one integer (no aggregation over
permission rows); rows stay tuples; because `release()` is pure its answer is memoised
per distinct combination of (grant, opt-in mask, audiences), which a page has few of; and
the response is rendered column by column.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from consentry.db.prepared import prepared_cursor
from consentry.detection.hook import note_release
from consentry.grants.actions import consent_use_due, do_record_consent_use
from consentry.grants.models import ClosedRoute, Consent
from consentry.grants.permissions import (
    GRAPH_FIELDS,
    RELEASE_BIT,
    fields_to_mask,
    mask_to_permissions,
)
from consentry.graph import limits
from consentry.graph.cursor import decode_cursor, encode_cursor
from consentry.graph.errors import insufficient_scope, invalid_request, not_found
from consentry.graph.release import (
    DEVELOPMENT,
    FRIENDS_PERMISSION,
    ID_FIELD,
    AppFacts,
    IdScope,
    Relation,
    SubjectFacts,
    ViewerFacts,
    friend_id_scope,
    may_list_friends,
    release,
)
from consentry.ledger.api import record_disclosure
from consentry.oauth.pairwise import (
    app_scoped_id,
    app_scoped_ids,
    installer_scoped_ids,
    person_id_for,
    person_id_for_installer,
)
from consentry.oauth.tokens import usable_token_facts_with
from consentry.oauth.validators import relay_address
from consentry.ops import metrics
from consentry.people.models import Friendship, Person, Post

DEFAULT_FIELDS: tuple[str, ...] = ("id", "name")
DEFAULT_PAGE = 100
MAX_PAGE = 5000
DEFAULT_POSTS_PAGE = 25
MAX_POSTS_PAGE = 100
POSTS_PERMISSION = "user_posts"
DATE_FIELDS = frozenset({"birthday"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ENDPOINT_ME = "/v1/me"
ENDPOINT_FRIENDS = "/v1/me/friends"
ENDPOINT_PERSON = "/v1/people/{id}"
ENDPOINT_POSTS = "/v1/me/posts"


@dataclass(frozen=True)
class Caller:
    """An app acting for a person through a valid token, with the facts rules 1, 2 and 4
    need. Built only by `access_caller_by_bearer`."""

    token_id: int
    app_id: int
    person_id: int
    # The token's consent (active: the token was refused otherwise), as read with it.
    consent_id: int
    email_choice: str
    permission_mask: int
    consent_last_used_at: datetime
    consent_expires_at: datetime
    app: AppFacts
    viewer: ViewerFacts
    limits: limits.Limits
    # The person's profile columns read with the token (access_caller_by_bearer's
    # `profile`), by name; None when they were not (then a read fetches its own).
    profile: dict[str, Any] | None = None

    @functools.cached_property
    def consent(self) -> Consent:
        """An unsaved stand-in for the consent row, with the columns the read path uses
        (built only when a use is to be recorded: a model costs more than a read's rule)."""
        return Consent(
            pk=self.consent_id,
            person_id=self.person_id,
            application_id=self.app_id,
            email_choice=self.email_choice,
            permission_mask=self.permission_mask,
            last_used_at=self.consent_last_used_at,
            expires_at=self.consent_expires_at,
            revoked_at=None,
        )


def access_caller_by_bearer(raw: str, profile: Sequence[str] = ()) -> Caller | None:
    """The caller behind a bearer token, or None when the token must be refused (401).

    None for an unknown, expired or revoked token, a token whose consent is revoked,
    expired or has no active permission, an app that is suspended or banned, an app in
    development used by someone without a role on it, and a deactivated person
    (oauth.tokens.TokenFacts.usable). The release rule re-checks all of this per datum;
    refusing here gives a clear 401. The facts come from one lean query, or from Redis
    without any database round trip (consentry.oauth.tokens). With `profile` (field
    names), that query also reads the person's columns for those fields, which /v1/me
    then need not fetch.
    """
    columns = tuple(f for f in profile if f != ID_FIELD)
    found = usable_token_facts_with(raw, columns)
    if found is None:
        return None
    facts, values = found
    if facts.consent_id is None:
        return None
    # usable() saw the consent: its columns are there.
    assert facts.consent_last_used_at is not None
    assert facts.consent_expires_at is not None
    grant = mask_to_permissions(facts.permission_mask)  # its active permission rows
    if not grant:
        return None
    return Caller(
        token_id=facts.token_id,
        app_id=facts.app_id,
        person_id=facts.person_id,
        consent_id=facts.consent_id,
        email_choice=facts.email_choice,
        permission_mask=facts.permission_mask,
        consent_last_used_at=facts.consent_last_used_at,
        consent_expires_at=facts.consent_expires_at,
        app=AppFacts(
            status=facts.app_status,
            approved_permissions=frozenset(facts.approved_permissions),
            agreement_signed=facts.agreement_signed,
        ),
        viewer=ViewerFacts(
            is_member=facts.app_status == DEVELOPMENT and facts.is_member,
            grant=grant,
            token_scope=facts.scopes,
        ),
        limits=limits.limits_for(facts.app_limits),
        profile=None
        if values is None
        else dict(zip(columns, _decoded(columns, values), strict=True)),
    )


def check_limits(caller: Caller) -> None:
    """Rule 4 for one request: raises limits.RateLimited."""
    limits.check_request_rate(caller.app_id, caller.token_id, caller.limits)


def parse_fields(raw: str | None) -> tuple[str, ...]:
    """The requested Graph fields, in response order, `id` always included.

    There is no field to search by: the API answers about `me`, `me`'s friends and
    app-scoped ids only, never about an email, a phone number or a name."""
    if raw is None or not raw.strip():
        return DEFAULT_FIELDS
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = wanted - set(GRAPH_FIELDS)
    if unknown:
        raise invalid_request(
            f"Unknown field(s): {', '.join(sorted(unknown)[:5])[:200]}. "
            f"Known fields: {', '.join(GRAPH_FIELDS)}."
        )
    wanted.add(ID_FIELD)
    return tuple(f for f in GRAPH_FIELDS if f in wanted)


def _disclose(caller: Caller, endpoint: str, released: Sequence[tuple[int, int]]) -> None:
    """Count the subjects against the daily volume, then write the ledger entry. Must run
    inside the transaction that built the response (docs/rules.md: no ledger, no data)."""
    limits.reserve_subjects(caller.app_id, len(released), caller.limits)
    try:
        now = timezone.now()
        if consent_use_due(caller.consent_last_used_at, now):
            do_record_consent_use(caller.consent, now)
        # Last in the transaction: it holds the ledger head's lock until commit.
        record_disclosure(
            app_id=caller.app_id,
            actor_id=caller.person_id,
            endpoint=endpoint,
            released=released,
            token_id=caller.token_id,
        )
        note_release(caller.app_id, caller.person_id, endpoint, released)  # harvest detection
    except BaseException:
        limits.release_subjects(caller.app_id, len(released))
        raise
    fields = sum(map(int.bit_count, map(itemgetter(1), released)))
    transaction.on_commit(lambda: metrics.count_released(len(released), fields))


def _read_transaction() -> contextlib.AbstractContextManager[Any]:
    """The transaction a read runs in. On SQLite, one transaction from the fetch to the
    ledger entry, which commits with it. On PostgreSQL none: the fetches are plain
    statements (under READ COMMITTED a transaction would give them no common snapshot
    anyway), the consent's last-use write (at most hourly) is one statement, and the
    ledger entry is one statement that commits alone (ledger.api.record_disclosure), last,
    so the ledger head's row lock is held for that statement only. Either way the body
    is returned only after the ledger entry is committed: no ledger, no data."""
    if connection.vendor == "postgresql":
        return contextlib.nullcontext()
    return transaction.atomic()


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


# --- /v1/me and /v1/people/{id} ----------------------------------------------------------


_PERSON_SQL: dict[tuple[str, tuple[str, ...]], str] = {}
_JSON_COLUMNS = frozenset({"likes"})


def _person_values(person_id: int, columns: Sequence[str]) -> tuple[Any, ...]:
    """One person's profile columns (GRAPH_FIELDS names are Person's column names), by
    a prepared statement: the ORM's query building cost more than the query."""
    key = (connection.vendor, tuple(columns))
    sql = _PERSON_SQL.get(key)
    if sql is None:
        q = connection.ops.quote_name
        sql = _PERSON_SQL[key] = (
            f"SELECT {', '.join(q(c) for c in columns)} "  # noqa: S608 (known column names)
            f"FROM {q(Person._meta.db_table)} WHERE id = %s"
        )
    with prepared_cursor() as cursor:
        cursor.execute(sql, [person_id])
        row = cursor.fetchone()
    if row is None:
        raise not_found()
    return _decoded(columns, row)


def _decoded(columns: Sequence[str], row: Sequence[Any]) -> tuple[Any, ...]:
    """Profile values as the API gives them: JSON columns decoded (SQLite hands back
    their text)."""
    return tuple(
        json.loads(v) if c in _JSON_COLUMNS and isinstance(v, str) else v
        for c, v in zip(columns, row, strict=True)
    )


def _self_body(caller: Caller, fields: tuple[str, ...]) -> tuple[dict[str, Any], int]:
    requested = frozenset(fields)
    released = release(caller.app, caller.viewer, SubjectFacts(Relation.SELF), requested)
    columns = [f for f in fields if f in released and f != ID_FIELD]
    read = caller.profile
    if not columns:
        values: tuple[Any, ...] = ()
    elif read is not None and read.keys() >= set(columns):
        values = tuple(read[c] for c in columns)  # read with the token
    else:
        values = _person_values(caller.person_id, columns)
    data: dict[str, Any] = {}
    if ID_FIELD in released:
        data[ID_FIELD] = app_scoped_id(caller.app_id, caller.person_id)
    for name, value in zip(columns, values, strict=True):
        if name == "email" and caller.email_choice == "relay":
            value = relay_address(caller.app_id, caller.person_id)
        data[name] = _iso(value)
    mask = fields_to_mask(released)
    return {"data": data, "meta": {"withheld_fields": len(requested - released)}}, mask


def read_me(caller: Caller, fields: tuple[str, ...]) -> dict[str, Any]:
    """GET /v1/me: the acting person's own fields (rules 1, 2 and 4)."""
    with _read_transaction():
        body, mask = _self_body(caller, fields)
        _disclose(caller, ENDPOINT_ME, [(caller.person_id, mask)] if mask else [])
    return body


def read_person(caller: Caller, scoped_id: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """GET /v1/people/{id}: one person by app-scoped id: the caller, or a listed friend.

    Raises the one 404 for anything else: garbage, another app's id, a stranger, a friend
    who is withheld, or any friend when user_friends is not covered."""
    person_id = person_id_for(caller.app_id, scoped_id)
    if person_id is None:  # an id scoped to this app and this installer (a friend)
        person_id = person_id_for_installer(caller.app_id, caller.person_id, scoped_id)
    if person_id is None:
        raise not_found()
    with _read_transaction():
        if person_id == caller.person_id:
            body, mask = _self_body(caller, fields)
            if ID_FIELD not in body["data"]:
                raise not_found()  # the app cannot have learnt this id from this token
            _disclose(caller, ENDPOINT_PERSON, [(caller.person_id, mask)] if mask else [])
            return body
        page = _friend_rows(caller, fields, ("=", person_id), limit=1)
        # The id must be the one the rule names this friend by (release.friend_id_scope):
        # an app-scoped id of a friend who no longer uses the app is as unknown as another
        # installer's id.
        if not page.entries or page.entries[0][ID_FIELD] != scoped_id:
            raise not_found()
        _disclose(caller, ENDPOINT_PERSON, page.released)
    return {"data": page.entries[0], "meta": {"withheld_fields": page.withheld_fields}}


# --- /v1/me/friends -----------------------------------------------------------------------


@dataclass
class _FriendPage:
    entries: list[dict[str, Any]]
    released: list[tuple[int, int]]
    withheld_subjects: int
    withheld_fields: int
    last_scanned: int | None
    more: bool


@dataclass(frozen=True)
class _Decision:
    """The release decision for one combination of friend facts, and how to render it."""

    listed: bool
    installer_scoped: bool  # named by an (app, installer)-scoped id (release.friend_id_scope)
    keys: tuple[str, ...]  # the entry's keys: id, then the released fields in order
    # From a rendered row (app-scoped id, then every requested field's value in order),
    # the entry's values; None when the decision releases every requested field.
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None
    mask: int
    withheld: int


def _friend_rows(
    caller: Caller, fields: tuple[str, ...], where: tuple[str, int], limit: int
) -> _FriendPage:
    """Up to `limit` friendship rows of the caller matching `where`, in friend id order,
    with the release rule applied to each friend.

    ONE query: friendship -> person LEFT JOIN the friend's consent to this app when it
    is active (rule 2: not revoked, not expired; at most one, unique per person and app),
    whose `permission_mask` is the friend's grant: their active permission rows as bits,
    kept equal to the rows by grants.actions. No active consent reads as no grant.
    Whether the friend closed the caller's route (rule 3) comes from the same query (a
    LEFT JOIN on the (through, person) unique index), as the first of the facts."""
    requested = frozenset(fields)
    names = [f for f in fields if f != ID_FIELD]
    facts_at = 1 + len(names)
    rows = _fetch_friend_rows(caller, names, where, limit + 1)
    more = len(rows) > limit
    del rows[limit:]
    if not rows:
        return _FriendPage([], [], 0, 0, None, False)

    # The rule runs once per distinct facts; a page has few (often one).
    facts_of = itemgetter(slice(facts_at, None))
    decisions = {key: _decide(caller, requested, names, key) for key in set(map(facts_of, rows))}
    shown = {id(d): d for d in decisions.values() if d.listed}
    listed_rows: list[tuple[Any, ...]]
    listed: list[_Decision] = []  # per listed row; only needed with several decisions shown
    if len(decisions) == 1:  # one decision for the whole page: no per-row lookup
        listed_rows = rows if shown else []
    else:
        kept = [(row, decisions[facts_of(row)]) for row in rows]
        kept = [(row, d) for row, d in kept if d.listed]
        listed_rows = [row for row, _ in kept]
        listed = [d for _, d in kept]
    withheld_subjects = len(rows) - len(listed_rows)

    # Render column by column (dates come as ISO text: _friends_sql), then one entry per
    # listed friend.
    friend_ids = list(map(itemgetter(0), listed_rows))
    rendered_columns: list[list[Any]] = [_friend_ids(caller, friend_ids, shown, listed)]
    for index in range(1, len(names) + 1):
        rendered_columns.append(list(map(itemgetter(index), listed_rows)))
    rendered = zip(*rendered_columns, strict=True)
    entries: list[dict[str, Any]]
    released: list[tuple[int, int]]
    if len(shown) == 1:
        # The common page: one decision for every listed friend.
        (only,) = shown.values()
        entries = list(map(_entry_maker(only.keys, only.pick), rendered))
        released = list(zip(friend_ids, repeat(only.mask, len(friend_ids)), strict=True))
        withheld_fields = only.withheld * len(friend_ids)
    else:
        withheld_fields = sum(d.withheld for d in listed)
        entries = [
            dict(zip(d.keys, values if d.pick is None else d.pick(values), strict=True))
            for values, d in zip(rendered, listed, strict=True)
        ]
        released = list(zip(friend_ids, map(attrgetter("mask"), listed), strict=True))
    return _FriendPage(entries, released, withheld_subjects, withheld_fields, rows[-1][0], more)


_FRIENDS_SQL: dict[tuple[str, tuple[str, ...], str], str] = {}


def _friends_sql(names: Sequence[str], op: str) -> str:
    """The page query of _friend_rows for these field names and `friend_id` comparison,
    built once per shape: the ORM's building of this join cost more than running it.

    Row layout: friend id, the requested values, then the facts the rule reads (route
    closed, grant bits, opt-in mask, audiences) contiguously, so one slice is the memo
    key. The friend's consent is joined only when active (rule 2: not revoked, not
    expired; at most one per person and app); no active consent reads as a NULL grant.
    The closed route (rule 3) is joined by its (through, person) unique index. Dates are
    read as the ISO text the API gives (not as date objects to format again)."""
    key = (connection.vendor, tuple(names), op)
    sql = _FRIENDS_SQL.get(key)
    if sql is None:
        if op not in ("=", ">"):
            raise ValueError(f"unknown friend id comparison {op!r}")
        q = connection.ops.quote_name
        columns = [
            "f.friend_id",
            *(
                _as_text(f"p.{q(name)}") if name in DATE_FIELDS else f"p.{q(name)}"
                for name in names
            ),
            "r.person_id IS NOT NULL",
            "c.permission_mask",
            "p.friend_share_mask",
            *(f"p.{q('audience_' + name)}" for name in names),
        ]
        sql = _FRIENDS_SQL[key] = (
            f"SELECT {', '.join(columns)} "  # noqa: S608 (known column names)
            f"FROM {q(Friendship._meta.db_table)} f "
            f"JOIN {q(Person._meta.db_table)} p ON p.id = f.friend_id "
            f"LEFT JOIN {q(Consent._meta.db_table)} c ON c.person_id = f.friend_id "
            "AND c.application_id = %s AND c.revoked_at IS NULL AND c.expires_at > %s "
            f"LEFT JOIN {q(ClosedRoute._meta.db_table)} r ON r.through_id = %s "
            "AND r.person_id = f.friend_id "
            f"WHERE f.person_id = %s AND f.friend_id {op} %s "
            "ORDER BY f.friend_id LIMIT %s"
        )
    return sql


def _as_text(column: str) -> str:
    """A date column as its ISO 8601 text (YYYY-MM-DD, as date.isoformat() gives it).
    On PostgreSQL through `timestamp` (without time zone): to_char has no date form, and
    a date left to PostgreSQL's implicit cast becomes a timestamptz at midnight in the
    session's TimeZone, which in a zone that skipped that day reads as the next day."""
    if connection.vendor == "postgresql":
        return f"to_char(CAST({column} AS timestamp), 'YYYY-MM-DD')"
    return f"CAST({column} AS TEXT)"  # SQLite stores Django's dates as that text


def _fetch_friend_rows(
    caller: Caller, names: Sequence[str], where: tuple[str, int], limit: int
) -> list[tuple[Any, ...]]:
    op, value = where
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with prepared_cursor() as cursor:
        cursor.execute(
            _friends_sql(names, op),
            [caller.app_id, now, caller.person_id, caller.person_id, value, limit],
        )
        rows = cursor.fetchall()
    decode = [i for i, name in enumerate(names, start=1) if name in _JSON_COLUMNS]
    if decode:
        rows = [
            tuple(
                json.loads(v) if i in decode and isinstance(v, str) else v
                for i, v in enumerate(row)
            )
            for row in rows
        ]
    return rows


def _friend_ids(
    caller: Caller, friend_ids: list[int], shown: dict[int, _Decision], listed: list[_Decision]
) -> list[str]:
    """The id of each listed friend: app-scoped or (app, installer)-scoped, as the rule
    decided (release.friend_id_scope), one cipher call per kind."""
    scopes = {d.installer_scoped for d in shown.values()}
    if scopes == {False}:
        return app_scoped_ids(caller.app_id, friend_ids)
    if scopes == {True}:
        return installer_scoped_ids(caller.app_id, caller.person_id, friend_ids)
    flags = [d.installer_scoped for d in listed]
    app_ids = iter(
        app_scoped_ids(caller.app_id, [p for p, f in zip(friend_ids, flags, strict=False) if not f])
    )
    mine = iter(
        installer_scoped_ids(
            caller.app_id,
            caller.person_id,
            [p for p, f in zip(friend_ids, flags, strict=False) if f],
        )
    )
    return [next(mine) if f else next(app_ids) for f in flags]


def _decide(
    caller: Caller, requested: frozenset[str], names: list[str], facts: tuple[Any, ...]
) -> _Decision:
    """Apply the release rule to one friend's facts (route closed, grant bits, opt-in
    mask, audiences); memoised by the caller per distinct facts."""
    subject = SubjectFacts(
        relation=Relation.FRIEND,
        audience=dict(zip(names, facts[3:], strict=True)),
        grant=mask_to_permissions(facts[1] or 0),
        friend_share_mask=facts[2],
        route_closed=bool(facts[0]),
    )
    released = release(caller.app, caller.viewer, subject, requested)
    shown = [i for i, name in enumerate(names, start=1) if name in released]
    return _Decision(
        listed=ID_FIELD in released,
        installer_scoped=friend_id_scope(subject) is IdScope.INSTALLER,
        keys=(ID_FIELD, *(names[i - 1] for i in shown)),
        pick=None if len(shown) == len(names) else _getter([0, *shown]),
        mask=fields_to_mask(released),
        withheld=len(requested - released),
    )


def _entry_maker(
    keys: tuple[str, ...], pick: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None
) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """rendered row -> entry {keys[i]: values[i]} where values is the row (or what `pick`
    takes of it): a dict display for the usual few keys (several times faster than
    dict(zip()) over 5,000 friends), dict(zip()) beyond."""
    if pick is not None:
        return lambda row: dict(zip(keys, pick(row), strict=True))
    if len(keys) == 1:
        (k0,) = keys
        return lambda v: {k0: v[0]}
    if len(keys) == 2:
        k0, k1 = keys
        return lambda v: {k0: v[0], k1: v[1]}
    if len(keys) == 3:
        k0, k1, k2 = keys
        return lambda v: {k0: v[0], k1: v[1], k2: v[2]}
    if len(keys) == 4:
        k0, k1, k2, k3 = keys
        return lambda v: {k0: v[0], k1: v[1], k2: v[2], k3: v[3]}
    return lambda v: dict(zip(keys, v, strict=True))


def _getter(indexes: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A fast row -> tuple of the values at `indexes` (itemgetter, without its quirks)."""
    if len(indexes) == 1:
        only = indexes[0]
        return lambda row: (row[only],)
    return itemgetter(*indexes)


def read_friends(
    caller: Caller, fields: tuple[str, ...], limit: int, after: str | None
) -> dict[str, Any]:
    """GET /v1/me/friends: the caller's friends whom the release rule lists, a page of
    `limit` friendships at a time in a stable order (friend id, never shown: the cursor
    is opaque). A page may list fewer than `limit` friends; `meta` counts the withheld."""
    if not may_list_friends(caller.app, caller.viewer):
        raise insufficient_scope(FRIENDS_PERMISSION)
    start = 0
    if after is not None:
        position = decode_cursor(after, "friends", caller.app_id, caller.person_id, 1)
        if position is None:
            raise invalid_request("The cursor is not valid for this request.")
        start = position[0]
    with _read_transaction():
        page = _friend_rows(caller, fields, (">", start), limit)
        _disclose(caller, ENDPOINT_FRIENDS, page.released)
    next_cursor = (
        encode_cursor("friends", caller.app_id, caller.person_id, (page.last_scanned,))
        if page.more and page.last_scanned is not None
        else None
    )
    return {
        "data": page.entries,
        "paging": {"next": next_cursor},
        "meta": {
            "withheld_subjects": page.withheld_subjects,
            "withheld_fields": page.withheld_fields,
        },
    }


# --- /v1/me/posts -------------------------------------------------------------------------


def post_id(app_id: int, post_pk: int) -> str:
    """An app-scoped post id: an HMAC, so two apps cannot match their posts up."""
    digest = hmac.new(
        settings.PAIRWISE_KEY.encode(), f"post:{app_id}:{post_pk}".encode(), hashlib.sha256
    ).digest()[:16]
    return base64.b32encode(digest).decode().rstrip("=").lower()


def read_posts(caller: Caller, limit: int, after: str | None) -> dict[str, Any]:
    """GET /v1/me/posts: the caller's own posts, newest first (needs user_posts)."""
    released = release(caller.app, caller.viewer, SubjectFacts(Relation.SELF), frozenset({"posts"}))
    if "posts" not in released:
        raise insufficient_scope(POSTS_PERMISSION)
    where = Q()
    if after is not None:
        position = decode_cursor(after, "posts", caller.app_id, caller.person_id, 2)
        if position is None:
            raise invalid_request("The cursor is not valid for this request.")
        moment = _EPOCH + timedelta(microseconds=position[0])
        where = Q(created_at__lt=moment) | Q(created_at=moment, pk__lt=position[1])
    with _read_transaction():
        rows = list(
            Post.objects.filter(where, author_id=caller.person_id)
            .order_by("-created_at", "-pk")
            .values_list("pk", "created_at", "message")[: limit + 1]
        )
        more = len(rows) > limit
        del rows[limit:]
        _disclose(caller, ENDPOINT_POSTS, [(caller.person_id, RELEASE_BIT["posts"])])
    data = [
        {"id": post_id(caller.app_id, pk), "created_time": created.isoformat(), "message": message}
        for pk, created, message in rows
    ]
    next_cursor = None
    if more and rows:
        pk, created, _ = rows[-1]
        micros = (created - _EPOCH) // timedelta(microseconds=1)
        next_cursor = encode_cursor("posts", caller.app_id, caller.person_id, (micros, pk))
    return {"data": data, "paging": {"next": next_cursor}, "meta": {"withheld_fields": 0}}
