"""People, friendships and posts: the platform's own data (docs/rules.md "Data model").

`Person` is the Django user model. The friendship cap is enforced by the database
itself: triggers keep `Person.friend_count` equal to the number of friendship rows and a
CHECK constraint refuses a count above MAX_FRIENDS, so no code path (ORM, bulk load, raw
SQL) can exceed it. See migrations/0002_friendship_triggers.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone

from consentry.people.fields import (
    DEFAULT_AUDIENCE,
    FIELD_BIT,
    MAX_FRIENDS,
    RELATIONSHIP_STATUSES,
    Audience,
)

AUDIENCE_CHOICES = [(a.value, a.value.replace("_", " ")) for a in Audience]
RELATIONSHIP_CHOICES = [(s, s.replace("_", " ")) for s in RELATIONSHIP_STATUSES]


def _audience(field: str) -> models.CharField:
    return models.CharField(
        max_length=8, choices=AUDIENCE_CHOICES, default=DEFAULT_AUDIENCE[field].value
    )


class PersonManager(BaseUserManager["Person"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> Person:
        if not email:
            raise ValueError("a person needs an email address to sign in")
        person = self.model(email=self.normalize_email(email).lower(), **extra)
        person.set_password(password)
        person.save(using=self._db)
        return person

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> Person:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class Person(AbstractBaseUser, PermissionsMixin):
    """A member of the platform, with a profile and a per-field audience."""

    external_id = models.CharField(
        max_length=64, unique=True, null=True, blank=True, help_text="id in the operator's import"
    )
    email = models.EmailField(unique=True)
    # When the address was verified; None = never. The `email_verified` claim reports it
    # (imported people are unverified unless the import says when they were verified).
    email_verified_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    language = models.CharField(
        max_length=8, default="en", choices=[("en", "English"), ("nl", "Nederlands")]
    )

    # Profile fields (docs/rules.md): email above is both the login and the `email` field.
    name = models.CharField(max_length=200)
    picture = models.URLField(max_length=500, blank=True)
    birthday = models.DateField(null=True, blank=True)
    hometown = models.CharField(max_length=200, blank=True)
    current_city = models.CharField(max_length=200, blank=True)
    relationship_status = models.CharField(max_length=32, blank=True, choices=RELATIONSHIP_CHOICES)
    likes = models.JSONField(default=list, blank=True)

    # One audience column per field: read in the same row as the value, no join.
    audience_name = _audience("name")
    audience_picture = _audience("picture")
    audience_email = _audience("email")
    audience_birthday = _audience("birthday")
    audience_hometown = _audience("hometown")
    audience_current_city = _audience("current_city")
    audience_relationship_status = _audience("relationship_status")
    audience_likes = _audience("likes")
    audience_posts = _audience("posts")

    # Bit per field (fields.FIELD_BIT): "friends may bring my <field> into apps they use".
    friend_share_mask = models.PositiveIntegerField(default=0)

    # Maintained by database triggers, never by application code.
    friend_count = models.PositiveIntegerField(default=0, editable=False)

    objects: ClassVar[PersonManager] = PersonManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(friend_count__lte=MAX_FRIENDS), name="person_friend_count_capped"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.email

    def audience(self, field: str) -> Audience:
        return Audience(getattr(self, f"audience_{field}"))

    def shares_with_friends_apps(self, field: str) -> bool:
        return bool(self.friend_share_mask & FIELD_BIT[field])


class Friendship(models.Model):
    """One direction of a symmetric friendship; both directions are always stored, so
    "friends of X" is a single index range scan. Create and delete them through
    consentry.people.actions, which writes both rows in one transaction."""

    person = models.ForeignKey(
        Person, on_delete=models.CASCADE, related_name="+", db_index=False
    )  # the unique (person, friend) index serves lookups by person
    friend = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+", db_index=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["person", "friend"], name="friendship_unique_pair"),
            models.CheckConstraint(
                condition=~Q(person=models.F("friend")), name="friendship_not_self"
            ),
        ]
        indexes: ClassVar[list[models.Index]] = []

    def __str__(self) -> str:
        return f"{self.person_id} <-> {self.friend_id}"


class Post(models.Model):
    """A post, with its own audience."""

    external_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    author = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="posts")
    created_at = models.DateTimeField(default=timezone.now)
    message = models.TextField()
    audience = models.CharField(
        max_length=8, choices=AUDIENCE_CHOICES, default=Audience.FRIENDS.value
    )

    class Meta:
        indexes = [models.Index(fields=["author", "-created_at"], name="post_author_recent")]

    def __str__(self) -> str:
        return f"post {self.pk} by {self.author_id}"
