"""The catalogue of profile fields and audiences (docs/rules.md "Data model").

Plain data, no Django: the release rule, the importer and the generator all read it.
"""

from __future__ import annotations

import enum


class Audience(enum.StrEnum):
    """Who may see a profile field or a post."""

    PUBLIC = "public"
    FRIENDS = "friends"
    ONLY_ME = "only_me"


# Every profile field a person has, in display order. `posts` is a field too: its audience
# is the default for new posts, and each post carries its own.
PROFILE_FIELDS: tuple[str, ...] = (
    "name",
    "picture",
    "email",
    "birthday",
    "hometown",
    "current_city",
    "relationship_status",
    "likes",
    "posts",
)

# The audience a new person starts with for each field: identity is public (it is what
# basic login releases anyway), contact data private, everything else for friends.
DEFAULT_AUDIENCE: dict[str, Audience] = {
    "name": Audience.PUBLIC,
    "picture": Audience.PUBLIC,
    "email": Audience.ONLY_ME,
    "birthday": Audience.FRIENDS,
    "hometown": Audience.FRIENDS,
    "current_city": Audience.FRIENDS,
    "relationship_status": Audience.FRIENDS,
    "likes": Audience.FRIENDS,
    "posts": Audience.FRIENDS,
}

# Bit of each field in Person.friend_share_mask ("friends may bring my <field> into apps
# they use", docs/rules.md release rule 3). Off by default, per field.
FIELD_BIT: dict[str, int] = {name: 1 << i for i, name in enumerate(PROFILE_FIELDS)}

RELATIONSHIP_STATUSES: tuple[str, ...] = (
    "single",
    "in_a_relationship",
    "engaged",
    "married",
    "its_complicated",
    "in_an_open_relationship",
    "widowed",
    "separated",
    "divorced",
)

MAX_FRIENDS = 5000


def audience_column(field: str) -> str:
    """Name of the Person column holding the audience for `field`."""
    return f"audience_{field}"
