"""The bulk import format (JSON Lines) as frozen dataclasses, with pure parsing and
validation: no database here. The importer, the exporter and the world generator all
speak these records, so an export is, by construction, valid import input.

One line per record:

- people: ``{"id", "email", "name", "picture"?, "birthday"? (YYYY-MM-DD), "hometown"?,
  "current_city"?, "relationship_status"?, "likes"? [...], "audience"? {field: public |
  friends | only_me}, "friend_share"? [field, ...], "language"? (en | nl)}``
- friendships: ``{"person": id, "friend": id}``, one line per undirected friendship
- posts: ``{"id", "author", "created_at" (ISO 8601 with offset), "message", "audience"}``

A missing optional person field means "empty" (or the default audience, docs/rules.md "Data
model"); a record describes the whole person, so re-importing it makes the row equal to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from consentry.people.fields import (
    DEFAULT_AUDIENCE,
    FIELD_BIT,
    PROFILE_FIELDS,
    RELATIONSHIP_STATUSES,
    Audience,
    audience_column,
)

KINDS: tuple[str, ...] = ("people", "friendships", "posts")
LANGUAGES: tuple[str, ...] = ("en", "nl")
MAX_ID = 64  # Person.external_id / Post.external_id max_length
MAX_TEXT = 200  # name, hometown, current_city, one like
MAX_LIKES = 1000
MAX_MESSAGE = 10_000
# Email is never shareable by friends: no permission releases another person's email
# (docs/rules.md "Permissions").
SHAREABLE_FIELDS: tuple[str, ...] = tuple(f for f in PROFILE_FIELDS if f != "email")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_email_ok = EmailValidator()
_url_ok = URLValidator(schemes=["http", "https"])


class RecordError(ValueError):
    """A record that is not valid import input; the message is the reason, for a person."""


QUOTED = 40  # characters of a bad value an error message quotes


def _quote(value: Any) -> str:
    """A bad value for an error message: its repr, cut to a short prefix (a bad value can
    be a megabyte long, and it is input, not something to copy into a terminal whole)."""
    if not isinstance(value, str):
        value = str(value)
        return value if len(value) <= QUOTED else value[:QUOTED] + "..."
    return repr(value) if len(value) <= QUOTED else repr(value[:QUOTED]) + "..."


def _refuse_bad_text(obj: Any) -> None:
    """Refuse NUL and lone surrogates anywhere in the record, keys included: PostgreSQL
    cannot store them (SQLite would), and the same file must get the same answer on
    every database. Iterative, so a deeply nested value cannot exhaust the stack."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise RecordError("text must not contain a NUL character")
            if _SURROGATE.search(item):
                raise RecordError("text must not contain a lone surrogate (invalid UTF-16)")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class PersonRecord:
    """One person. `audience` holds one Audience per PROFILE_FIELDS entry, in that order;
    `friend_share` the opted-in fields in PROFILE_FIELDS order."""

    id: str
    email: str
    name: str
    picture: str = ""
    birthday: date | None = None
    hometown: str = ""
    current_city: str = ""
    relationship_status: str = ""
    likes: tuple[str, ...] = ()
    audience: tuple[Audience, ...] = tuple(DEFAULT_AUDIENCE[f] for f in PROFILE_FIELDS)
    friend_share: tuple[str, ...] = ()
    language: str = "en"
    # When the operator verified the address; None (the default) means never verified,
    # and the `email_verified` claim then says false (OpenID Connect Core 5.1).
    email_verified_at: datetime | None = None

    @property
    def friend_share_mask(self) -> int:
        mask = 0
        for field in self.friend_share:
            mask |= FIELD_BIT[field]
        return mask

    def columns(self) -> dict[str, Any]:
        """Person column values this record sets (everything but password and counters)."""
        values: dict[str, Any] = {
            "external_id": self.id,
            "email": self.email,
            "name": self.name,
            "picture": self.picture,
            "birthday": self.birthday,
            "hometown": self.hometown,
            "current_city": self.current_city,
            "relationship_status": self.relationship_status,
            "likes": list(self.likes),
            "friend_share_mask": self.friend_share_mask,
            "language": self.language,
            "email_verified_at": self.email_verified_at,
        }
        for field, audience in zip(PROFILE_FIELDS, self.audience, strict=True):
            values[audience_column(field)] = audience.value
        return values

    @classmethod
    def from_columns(cls, values: Mapping[str, Any]) -> PersonRecord:
        """The record for a Person row given as `columns()`-style values."""
        mask = values["friend_share_mask"]
        return cls(
            id=values["external_id"],
            email=values["email"],
            name=values["name"],
            picture=values["picture"],
            birthday=values["birthday"],
            hometown=values["hometown"],
            current_city=values["current_city"],
            relationship_status=values["relationship_status"],
            likes=tuple(values["likes"]),
            audience=tuple(Audience(values[audience_column(f)]) for f in PROFILE_FIELDS),
            friend_share=tuple(f for f in SHAREABLE_FIELDS if mask & FIELD_BIT[f]),
            language=values["language"],
            email_verified_at=values.get("email_verified_at"),
        )

    def to_json(self) -> str:
        """One line of people.jsonl (no newline); empty optional fields are left out."""
        obj: dict[str, Any] = {"id": self.id, "email": self.email, "name": self.name}
        if self.picture:
            obj["picture"] = self.picture
        if self.birthday is not None:
            obj["birthday"] = self.birthday.isoformat()
        for key in ("hometown", "current_city", "relationship_status"):
            if getattr(self, key):
                obj[key] = getattr(self, key)
        if self.likes:
            obj["likes"] = list(self.likes)
        obj["audience"] = {f: a.value for f, a in zip(PROFILE_FIELDS, self.audience, strict=True)}
        if self.friend_share:
            obj["friend_share"] = list(self.friend_share)
        obj["language"] = self.language
        if self.email_verified_at is not None:
            obj["email_verified_at"] = format_datetime(self.email_verified_at)
        return _dumps(obj)


@dataclass(frozen=True)
class FriendshipRecord:
    """One undirected friendship between two external ids."""

    person: str
    friend: str

    def to_json(self) -> str:
        return _dumps({"person": self.person, "friend": self.friend})


@dataclass(frozen=True)
class PostRecord:
    """One post; `created_at` is timezone-aware."""

    id: str
    author: str
    created_at: datetime
    message: str
    audience: Audience

    def to_json(self) -> str:
        return _dumps(
            {
                "id": self.id,
                "author": self.author,
                "created_at": format_datetime(self.created_at),
                "message": self.message,
                "audience": self.audience.value,
            }
        )


Record = PersonRecord | FriendshipRecord | PostRecord


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, the form the exporter writes."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def kind_for_path(path: Path) -> str | None:
    """The record kind a file name announces (people*.jsonl, ...), or None."""
    name = path.name.lower()
    for kind in KINDS:
        if name.startswith(kind) and name.endswith(".jsonl"):
            return kind
    return None


# --- parsing ------------------------------------------------------------------------------


def _load_object(line: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordError(f"malformed JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise RecordError("malformed JSON: nested too deeply") from None
    except ValueError:  # e.g. an integer of more than 4,300 digits
        raise RecordError("malformed JSON: a number is too long") from None
    if not isinstance(obj, dict):
        raise RecordError("expected a JSON object")
    _refuse_bad_text(obj)
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise RecordError(f"unknown field {_quote(unknown[0])}")
    missing = [key for key in required if obj.get(key) is None]
    if missing:
        raise RecordError(f"missing field {_quote(missing[0])}")
    return obj


def _text(obj: dict, key: str, limit: int, *, required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{_quote(key)} must be a string")
    value = value.strip()
    if required and not value:
        raise RecordError(f"{_quote(key)} must not be empty")
    if len(value) > limit:
        raise RecordError(f"{_quote(key)} is longer than {limit} characters")
    return value


def _choice(obj: dict, key: str, allowed: tuple[str, ...]) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or value not in allowed:
        raise RecordError(f"{_quote(key)} must be one of {', '.join(allowed)}, not {_quote(value)}")
    return value


def _audience(value: Any, what: str) -> Audience:
    try:
        return Audience(value)
    except ValueError:
        choices = ", ".join(a.value for a in Audience)
        raise RecordError(f"{what} must be one of {choices}, not {_quote(value)}") from None


def _field_list(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"{_quote(key)} must be a list of strings")
    return tuple(value)


PERSON_KEYS = (
    "id",
    "email",
    "name",
    "picture",
    "birthday",
    "hometown",
    "current_city",
    "relationship_status",
    "likes",
    "audience",
    "friend_share",
    "language",
    "email_verified_at",
)


def _moment(obj: dict, key: str) -> datetime | None:
    """An optional ISO 8601 date and time with a UTC offset, as UTC."""
    raw = obj.get(key)
    if raw is None:
        return None
    try:
        if not isinstance(raw, str):
            raise ValueError
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise RecordError(f"{key!r} must be an ISO 8601 date and time, not {_quote(raw)}") from None
    if moment.tzinfo is None:
        raise RecordError(f"{key!r} needs a UTC offset (e.g. Z): {_quote(raw)}")
    return moment.astimezone(UTC)


def parse_person(line: str) -> PersonRecord:
    """Parse and validate one people.jsonl line; raises RecordError with the reason."""
    obj = _load_object(line, PERSON_KEYS, ("id", "email", "name"))
    person_id = _text(obj, "id", MAX_ID, required=True)
    email = _text(obj, "email", 254, required=True).lower()
    try:
        _email_ok(email)
    except ValidationError:
        raise RecordError(f"'email' is not an email address: {_quote(email)}") from None
    picture = _text(obj, "picture", 500)
    if picture:
        try:
            _url_ok(picture)
        except ValidationError:
            raise RecordError(f"'picture' is not an http(s) URL: {_quote(picture)}") from None
    birthday = None
    if obj.get("birthday") is not None:
        raw = obj["birthday"]
        if not isinstance(raw, str) or not _DATE.fullmatch(raw):
            raise RecordError(f"'birthday' must be a date as YYYY-MM-DD, not {_quote(raw)}")
        try:
            birthday = date.fromisoformat(raw)
        except ValueError:
            raise RecordError(f"'birthday' is not a real date: {_quote(raw)}") from None
    likes: tuple[str, ...] = ()
    if obj.get("likes") is not None:
        likes = tuple(v.strip() for v in _field_list(obj["likes"], "likes"))
        if len(likes) > MAX_LIKES:
            raise RecordError(f"'likes' has more than {MAX_LIKES} entries")
        if any(not v or len(v) > MAX_TEXT for v in likes):
            raise RecordError(f"every like must be 1 to {MAX_TEXT} characters")
    audience = dict(DEFAULT_AUDIENCE)
    if obj.get("audience") is not None:
        given = obj["audience"]
        if not isinstance(given, dict):
            raise RecordError("'audience' must be an object of field: audience")
        for field, value in given.items():
            if field not in audience:
                raise RecordError(f"'audience' names an unknown field {_quote(field)}")
            audience[field] = _audience(value, f"audience of {_quote(field)}")
    share: tuple[str, ...] = ()
    if obj.get("friend_share") is not None:
        given_share = _field_list(obj["friend_share"], "friend_share")
        for field in given_share:
            if field not in SHAREABLE_FIELDS:
                raise RecordError(f"'friend_share' cannot hold {_quote(field)}")
        if len(set(given_share)) != len(given_share):
            raise RecordError("'friend_share' names a field twice")
        share = tuple(f for f in SHAREABLE_FIELDS if f in given_share)
    return PersonRecord(
        id=person_id,
        email=email,
        name=_text(obj, "name", MAX_TEXT, required=True),
        picture=picture,
        birthday=birthday,
        hometown=_text(obj, "hometown", MAX_TEXT),
        current_city=_text(obj, "current_city", MAX_TEXT),
        relationship_status=_choice(obj, "relationship_status", RELATIONSHIP_STATUSES),
        likes=likes,
        audience=tuple(audience[f] for f in PROFILE_FIELDS),
        friend_share=share,
        language=_choice(obj, "language", LANGUAGES) or "en",
        email_verified_at=_moment(obj, "email_verified_at"),
    )


def parse_friendship(line: str) -> FriendshipRecord:
    """Parse and validate one friendships.jsonl line; raises RecordError."""
    keys = ("person", "friend")
    obj = _load_object(line, keys, keys)
    record = FriendshipRecord(
        person=_text(obj, "person", MAX_ID, required=True),
        friend=_text(obj, "friend", MAX_ID, required=True),
    )
    if record.person == record.friend:
        raise RecordError(f"{_quote(record.person)} cannot befriend themselves")
    return record


def parse_post(line: str) -> PostRecord:
    """Parse and validate one posts.jsonl line; raises RecordError."""
    keys = ("id", "author", "created_at", "message", "audience")
    obj = _load_object(line, keys, keys)
    raw = obj["created_at"]
    try:
        if not isinstance(raw, str):
            raise ValueError
        created_at = datetime.fromisoformat(raw)
    except ValueError:
        raise RecordError(
            f"'created_at' must be an ISO 8601 date and time, not {_quote(raw)}"
        ) from None
    if created_at.tzinfo is None:
        raise RecordError(f"'created_at' needs a UTC offset (e.g. Z): {_quote(raw)}")
    message = obj["message"]
    if not isinstance(message, str) or not message.strip():
        raise RecordError("'message' must be a non-empty string")
    if len(message) > MAX_MESSAGE:
        raise RecordError(f"'message' is longer than {MAX_MESSAGE} characters")
    return PostRecord(
        id=_text(obj, "id", MAX_ID, required=True),
        author=_text(obj, "author", MAX_ID, required=True),
        created_at=created_at.astimezone(UTC),
        message=message,
        audience=_audience(obj["audience"], "'audience'"),
    )


PARSERS: dict[str, Callable[[str], Record]] = {
    "people": parse_person,
    "friendships": parse_friendship,
    "posts": parse_post,
}
