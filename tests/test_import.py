"""`consentry import`: every bad record aborts its file with FILE:LINE: reason and leaves
the database exactly as it was; good files import, and importing again changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from consentry.people.fields import FIELD_BIT, MAX_FRIENDS, Audience
from consentry.people.models import Friendship, Person, Post

PEOPLE = [
    {
        "id": "ann",
        "email": "Ann.de.Vries@example.test",
        "name": "Ann de Vries",
        "birthday": "1990-04-17",
        "hometown": "Utrecht",
        "current_city": "Amsterdam",
        "relationship_status": "married",
        "likes": ["Cycling", "Jazz"],
        "audience": {"birthday": "public", "email": "friends"},
        "friend_share": ["birthday"],
        "language": "nl",
    },
    {"id": "bob", "email": "bob@example.test", "name": "Bob Smith"},
    {"id": "cem", "email": "cem@example.test", "name": "Cem Yilmaz", "picture": "https://p.example.test/c.jpg"},
]  # fmt: skip
FRIENDSHIPS = [{"person": "ann", "friend": "bob"}, {"person": "cem", "friend": "ann"}]
POSTS = [
    {
        "id": "post-1",
        "author": "ann",
        "created_at": "2014-05-01T12:00:00Z",
        "message": "Hallo!",
        "audience": "friends",
    },
    {
        "id": "post-2",
        "author": "bob",
        "created_at": "2014-05-02T08:30:00+02:00",
        "message": "Hello",
        "audience": "public",
    },
]


def write(path: Path, records: list) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def snapshot() -> tuple:
    """Everything an import can touch, to prove a failed one wrote nothing."""
    people = sorted(Person.objects.values_list("external_id", "email", "name", "friend_count"))
    friendships = sorted(Friendship.objects.values_list("person_id", "friend_id"))
    posts = sorted(Post.objects.values_list("external_id", "message"))
    return people, friendships, posts


@pytest.fixture
def world_dir(tmp_path: Path) -> Path:
    write(tmp_path / "people.jsonl", PEOPLE)
    write(tmp_path / "friendships.jsonl", FRIENDSHIPS)
    write(tmp_path / "posts.jsonl", POSTS)
    return tmp_path


def test_imports_people_friendships_and_posts(db, world_dir, capsys):
    call_command("import", str(world_dir))
    ann = Person.objects.get(external_id="ann")
    assert ann.email == "ann.de.vries@example.test"
    assert str(ann.birthday) == "1990-04-17"
    assert ann.likes == ["Cycling", "Jazz"]
    assert ann.audience("birthday") == Audience.PUBLIC
    assert ann.audience("email") == Audience.FRIENDS
    assert ann.audience("hometown") == Audience.FRIENDS  # default for fields not given
    assert ann.friend_share_mask == FIELD_BIT["birthday"]
    assert ann.friend_count == 2
    assert ann.language == "nl"
    assert not ann.has_usable_password()
    assert Person.objects.get(external_id="bob").friend_count == 1
    assert Friendship.objects.count() == 4  # both directions
    post = Post.objects.get(external_id="post-2")
    assert post.author.external_id == "bob"
    assert post.created_at.isoformat() == "2014-05-02T06:30:00+00:00"
    assert post.audience == "public"
    out = capsys.readouterr().out
    assert "people.jsonl: people: 3 created, 0 updated, 0 unchanged" in out


def test_importing_the_same_files_again_changes_nothing(db, world_dir, tmp_path, capsys):
    call_command("import", str(world_dir))
    call_command("world_export", str(tmp_path / "before"))
    before = snapshot()
    capsys.readouterr()
    call_command("import", str(world_dir))
    out = capsys.readouterr().out
    call_command("world_export", str(tmp_path / "after"))
    assert snapshot() == before
    for name in ("people.jsonl", "friendships.jsonl", "posts.jsonl"):
        assert (tmp_path / "before" / name).read_bytes() == (tmp_path / "after" / name).read_bytes()
    assert "people: 0 created, 0 updated, 3 unchanged" in out
    assert "friendships: 0 created, 0 updated, 2 unchanged" in out
    assert "posts: 0 created, 0 updated, 2 unchanged" in out


def test_reimport_updates_a_changed_person_and_keeps_their_password(db, world_dir, tmp_path):
    call_command("import", str(world_dir))
    ann = Person.objects.get(external_id="ann")
    ann.set_password("a new password for ann")
    ann.save(update_fields=["password"])
    changed = [dict(PEOPLE[0], current_city="Leiden")]
    call_command("import", str(write(tmp_path / "people-update.jsonl", changed)))
    ann.refresh_from_db()
    assert ann.current_city == "Leiden"
    assert ann.check_password("a new password for ann")


def test_export_then_import_into_an_empty_database_gives_the_same_export(db, world_dir, tmp_path):
    call_command("import", str(world_dir))
    call_command("world_export", str(tmp_path / "first"))
    Person.objects.filter(external_id__isnull=False).delete()
    assert not Friendship.objects.exists()
    call_command("import", str(tmp_path / "first"))
    call_command("world_export", str(tmp_path / "second"))
    for name in ("people.jsonl", "friendships.jsonl", "posts.jsonl"):
        first = (tmp_path / "first" / name).read_bytes()
        assert first == (tmp_path / "second" / name).read_bytes()
        assert first  # not trivially equal


def test_kind_can_be_given_for_other_file_names(db, tmp_path):
    path = write(tmp_path / "members.jsonl", PEOPLE[1:2])
    with pytest.raises(CommandError, match="--kind"):
        call_command("import", str(path))
    call_command("import", str(path), kind="people")
    assert Person.objects.filter(external_id="bob").exists()


def dan(**fields: object) -> dict:
    return {"id": "dan", "email": "d@example.test", "name": "D", **fields}


BAD_PEOPLE = [
    ("malformed JSON", '{"id": "dan", "email": "dan@example.test", "name": ', "malformed JSON"),
    ("missing field", {"id": "dan", "name": "Dan"}, "missing field 'email'"),
    ("bad enum", dan(relationship_status="maybe"), "'relationship_status' must be one of"),
    ("bad audience", dan(audience={"birthday": "all"}), "audience of 'birthday' must be one of"),
    ("bad date", dan(birthday="1990-02-30"), "'birthday' is not a real date"),
    ("date format", dan(birthday="17/04/1990"), "'birthday' must be a date as YYYY-MM-DD"),
    ("unknown key", dan(shoe_size=44), "unknown field 'shoe_size'"),
    ("wrong type", dan(name=7), "'name' must be a string"),
    ("bad email", dan(email="not-an-email"), "'email' is not an email address"),
    ("duplicate id", dan(id="bob"), "duplicate id 'bob' (first on line 2)"),
    ("duplicate email", dan(email="BOB@example.test"), "duplicate email 'bob@example.test'"),
    ("email shared", dan(friend_share=["email"]), "'friend_share' cannot hold 'email'"),
]


@pytest.mark.parametrize(
    ("bad", "reason"), [(b, r) for _, b, r in BAD_PEOPLE], ids=[i for i, _, _ in BAD_PEOPLE]
)
def test_bad_person_aborts_the_file_naming_file_and_line(db, tmp_path, bad, reason):
    path = write(tmp_path / "people.jsonl", [*PEOPLE, bad])
    with pytest.raises(CommandError) as excinfo:
        call_command("import", str(path))
    assert f"{path}:4: {reason}" in str(excinfo.value)
    assert not Person.objects.exists()


def test_email_of_another_person_is_refused(db, world_dir, tmp_path, make_person):
    make_person(email="taken@example.test")
    path = write(tmp_path / "people.jsonl", [dict(PEOPLE[1], email="taken@example.test")])
    before = snapshot()
    with pytest.raises(CommandError, match=f"{path}:1: email 'taken@example.test' already"):
        call_command("import", str(path))
    assert snapshot() == before


BAD_FRIENDSHIPS = [
    ("unknown friend", {"person": "ann", "friend": "zed"}, "unknown person 'zed'"),
    ("self friendship", {"person": "bob", "friend": "bob"}, "'bob' cannot befriend themselves"),
    ("duplicate", {"person": "bob", "friend": "ann"}, "duplicate friendship (first on line 1)"),
    ("missing field", {"person": "bob"}, "missing field 'friend'"),
    ("not an object", '["ann", "cem"]', "expected a JSON object"),
]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [(b, r) for _, b, r in BAD_FRIENDSHIPS],
    ids=[i for i, _, _ in BAD_FRIENDSHIPS],
)
def test_bad_friendship_aborts_the_file_naming_file_and_line(db, world_dir, tmp_path, bad, reason):
    call_command("import", str(world_dir / "people.jsonl"))
    path = write(tmp_path / "friendships-more.jsonl", [*FRIENDSHIPS, bad])
    before = snapshot()
    with pytest.raises(CommandError) as excinfo:
        call_command("import", str(path))
    assert f"{path}:3: {reason}" in str(excinfo.value)
    assert snapshot() == before


def post3(**fields: object) -> dict:
    return {**POSTS[0], "id": "post-3", **fields}


BAD_POSTS = [
    ("unknown author", post3(author="zed"), "unknown author 'zed'"),
    ("bad audience", post3(audience="world"), "'audience' must be one of"),
    ("naive time", post3(created_at="2014-05-01T12:00:00"), "'created_at' needs a UTC offset"),
    ("bad time", post3(created_at="yesterday"), "'created_at' must be an ISO 8601"),
    ("duplicate id", post3(id="post-1"), "duplicate id 'post-1' (first on line 1)"),
    ("empty message", post3(message=" "), "'message' must be a non-empty"),
]


@pytest.mark.parametrize(
    ("bad", "reason"), [(b, r) for _, b, r in BAD_POSTS], ids=[i for i, _, _ in BAD_POSTS]
)
def test_bad_post_aborts_the_file_naming_file_and_line(db, world_dir, tmp_path, bad, reason):
    call_command("import", str(world_dir / "people.jsonl"))
    path = write(tmp_path / "posts.jsonl", [*POSTS, bad])
    before = snapshot()
    with pytest.raises(CommandError) as excinfo:
        call_command("import", str(path))
    assert f"{path}:3: {reason}" in str(excinfo.value)
    assert snapshot() == before


def test_friendship_past_the_cap_is_a_line_error_and_nothing_is_written(db, tmp_path):
    """A person who already has 5,000 friends cannot get one more through an import."""
    Person.objects.bulk_create(
        [Person(external_id="hub", email="hub@example.test", name="Hub")]
        + [
            Person(external_id=f"f{i}", email=f"f{i}@example.test", name=f"F {i}")
            for i in range(MAX_FRIENDS + 2)
        ]
    )
    hub = Person.objects.get(external_id="hub")
    others = list(Person.objects.exclude(pk=hub.pk).order_by("pk").values_list("pk", flat=True))
    Friendship.objects.bulk_create(
        [Friendship(person_id=hub.pk, friend_id=o) for o in others[:MAX_FRIENDS]]
        + [Friendship(person_id=o, friend_id=hub.pk) for o in others[:MAX_FRIENDS]]
    )
    last, spare = (
        Person.objects.get(pk=others[MAX_FRIENDS]),
        Person.objects.get(pk=others[MAX_FRIENDS + 1]),
    )
    path = write(
        tmp_path / "friendships.jsonl",
        [
            {"person": last.external_id, "friend": spare.external_id},
            {"person": last.external_id, "friend": "hub"},
        ],
    )
    rows = Friendship.objects.count()
    with pytest.raises(CommandError, match=f"{path}:2: friendship cap of 5000 reached for 'hub'"):
        call_command("import", str(path))
    assert Friendship.objects.count() == rows
    hub.refresh_from_db()
    assert hub.friend_count == MAX_FRIENDS
