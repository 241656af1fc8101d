"""`consentry world generate` and `world export` against a real database: the
same seed exports byte-identical files, generated people sign in with the demo password,
and a world is never overwritten by accident."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Max

from consentry.cli import main
from consentry.people.fields import MAX_FRIENDS
from consentry.people.models import Friendship, Person, Post
from consentry.world.exporter import FILES


def generate(people: int = 300, seed: int = 1, *extra: str) -> None:
    call_command(
        "world_generate",
        "--people",
        str(people),
        "--seed",
        str(seed),
        "--mean-friends",
        "12",
        *extra,
    )


def export(directory: Path) -> dict[str, bytes]:
    call_command("world_export", str(directory))
    return {name: (directory / name).read_bytes() for name in FILES}


@pytest.mark.django_db(transaction=True)
def test_cli_world_generate_fills_the_database(capsys):
    """Through the `consentry` console script; it closes the database connection when
    done (as manage.py does), hence a committed test rather than a rolled-back one."""
    main(["world", "generate", "--people", "200", "--seed", "5", "--mean-friends", "10"])
    out = capsys.readouterr().out
    assert "world seed 5: 200 people" in out
    assert Person.objects.filter(external_id__isnull=False).count() == 200
    assert Friendship.objects.count() > 0
    assert Post.objects.count() > 0
    counted = Person.objects.aggregate(Max("friend_count"))["friend_count__max"]
    assert counted <= MAX_FRIENDS


def test_friend_counts_match_the_friendship_rows(db):
    generate()
    person = Person.objects.filter(friend_count__gt=0).order_by("pk").first()
    assert person is not None
    assert Friendship.objects.filter(person=person).count() == person.friend_count
    assert Friendship.objects.filter(friend=person).count() == person.friend_count


def test_same_seed_exports_byte_identical_files_and_another_seed_does_not(db, tmp_path):
    generate(seed=42)
    first = export(tmp_path / "first")
    generate(300, 42, "--replace")
    assert export(tmp_path / "again") == first
    generate(300, 43, "--replace")
    other = export(tmp_path / "other")
    assert all(other[name] != first[name] for name in FILES)
    assert other["friendships.jsonl"].count(b"\n") == Friendship.objects.count() // 2


def test_export_of_a_generated_world_imports_into_an_empty_database(db, tmp_path):
    generate(seed=8)
    first = export(tmp_path / "first")
    Person.objects.all().delete()
    call_command("import", str(tmp_path / "first"))
    assert export(tmp_path / "second") == first


def test_generating_into_a_world_is_refused_without_replace(db):
    generate(seed=1)
    with pytest.raises(CommandError, match=r"already holds a world.*--replace"):
        generate(seed=2)
    assert Person.objects.get(external_id="p0000001").email.endswith(".1@example.test")


def test_replace_keeps_accounts_that_are_not_part_of_the_world(db, make_person):
    staff = make_person(email="staff@example.test", is_staff=True)
    generate(seed=1)
    generate(300, 2, "--replace")
    assert Person.objects.filter(pk=staff.pk).exists()
    assert Person.objects.filter(external_id__isnull=False).count() == 300


def test_generated_person_signs_in_with_the_demo_password(db, client):
    generate(50, 3)
    email = Person.objects.get(external_id="p0000007").email
    response = client.post(
        "/accounts/login/", {"username": email, "password": "consentry-demo"}, follow=False
    )
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(Person.objects.get(email=email).pk)


def test_password_option_sets_the_shared_password(db, client):
    generate(20, 3, "--password", "another demo secret")
    person = Person.objects.get(external_id="p0000002")
    assert person.check_password("another demo secret")
    assert not person.check_password("consentry-demo")


def test_three_thousand_people_have_the_configured_mean_and_nobody_passes_the_cap(db):
    call_command("world_generate", "--people", "3000", "--seed", "9", "--mean-friends", "20")
    counts = list(Person.objects.values_list("friend_count", flat=True))
    assert len(counts) == 3000
    assert 18 <= sum(counts) / len(counts) <= 22
    assert max(counts) <= MAX_FRIENDS
    assert max(counts) > 5 * 20  # heavy tail: some people have many times the mean
    assert Friendship.objects.count() == sum(counts)
