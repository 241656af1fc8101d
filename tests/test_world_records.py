"""The import format's records, without a database: what the exporter writes is what the
importer reads back, field for field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentry.people.fields import PROFILE_FIELDS, RELATIONSHIP_STATUSES, Audience
from consentry.world.records import (
    SHAREABLE_FIELDS,
    PersonRecord,
    PostRecord,
    RecordError,
    kind_for_path,
    parse_friendship,
    parse_person,
    parse_post,
)

text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=30
)
people = st.builds(
    PersonRecord,
    id=text,
    email=st.from_regex(r"[a-z0-9.]{1,12}@example\.test", fullmatch=True).filter(
        lambda e: not e.startswith(".") and ".." not in e and ".@" not in e
    ),
    name=text,
    picture=st.sampled_from(["", "https://pictures.example.test/a.jpg"]),
    birthday=st.none() | st.dates(date(1900, 1, 1), date(2014, 1, 1)),
    hometown=st.just("") | text,
    current_city=st.just("") | text,
    relationship_status=st.sampled_from(("", *RELATIONSHIP_STATUSES)),
    likes=st.lists(text, max_size=5).map(tuple),
    audience=st.tuples(*[st.sampled_from(list(Audience)) for _ in PROFILE_FIELDS]),
    friend_share=st.sets(st.sampled_from(SHAREABLE_FIELDS)).map(
        lambda s: tuple(f for f in SHAREABLE_FIELDS if f in s)
    ),
    language=st.sampled_from(["en", "nl"]),
)


@settings(max_examples=150, deadline=None)
@given(people)
def test_person_record_survives_a_round_trip_through_its_json_line(person):
    assert parse_person(person.to_json()) == person


def test_post_time_is_normalised_to_utc():
    post = parse_post(
        '{"id": "x", "author": "a", "created_at": "2014-05-02T08:30:00+02:00",'
        ' "message": "Hi", "audience": "only_me"}'
    )
    assert post == PostRecord(
        "x", "a", datetime(2014, 5, 2, 6, 30, tzinfo=UTC), "Hi", Audience.ONLY_ME
    )
    assert '"created_at":"2014-05-02T06:30:00Z"' in post.to_json()


def test_missing_optional_fields_take_the_safe_defaults():
    person = parse_person('{"id": "a", "email": "a@example.test", "name": "A"}')
    assert person.audience[PROFILE_FIELDS.index("email")] == Audience.ONLY_ME
    assert person.friend_share == ()
    assert person.language == "en"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"person": "a", "friend": "a"}', "cannot befriend themselves"),
        ('{"person": "a", "friend": 3}', "'friend' must be a string"),
        ('{"person": "a", "friend": "b", "since": 2010}', "unknown field 'since'"),
        ("{", "malformed JSON"),
    ],
)
def test_bad_friendship_lines_say_why(line, reason):
    with pytest.raises(RecordError, match=reason):
        parse_friendship(line)


def test_kind_comes_from_the_file_name():
    assert kind_for_path(Path("x/people-2024.jsonl")) == "people"
    assert kind_for_path(Path("friendships.jsonl")) == "friendships"
    assert kind_for_path(Path("posts_a.jsonl")) == "posts"
    assert kind_for_path(Path("people.json")) is None
