"""Canaries: deletion is not taken on trust (docs/rules.md "Harvest detection and incident
response").

1. App-scoped ids decode only under the issuing app's key (consentry.oauth.pairwise): a
   leaked file's ids name the app that received them.
2. Seed accounts: one staff-operated canary person per live app holding non-basic
   permissions, with a name, birthday, hometown and likes unique to that app. They have
   no friends (never shown to other people) and detection never counts them. When their
   values turn up in a file without ids, they name the app.
3. Relay addresses: every seed account gives its app a per-app relay address; mail to it
   (`consentry canary mail-received ADDRESS`, the hook for the operator's mail server)
   proves the app still holds the address.

Any sighting after a deletion attestation marks the attestation false
(consentry.incidents.actions.do_record_sighting).
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from consentry.grants.actions import do_grant_consent
from consentry.grants.permissions import PERMISSIONS
from consentry.incidents.actions import do_record_sighting
from consentry.incidents.models import CanaryAccount, CanarySighting
from consentry.oauth.models import Application, AppStatus
from consentry.oauth.pairwise import person_ids_for
from consentry.oauth.validators import relay_address
from consentry.people.models import Person

SCOPED_ID = re.compile(r"\b[a-z2-7]{26}\b")
MAX_FILE_BYTES = 512 * 1024 * 1024
_SYLLABLES = [
    "ka",
    "ve",
    "lo",
    "ri",
    "sa",
    "mun",
    "tor",
    "el",
    "an",
    "is",
    "da",
    "bre",
    "cor",
    "fin",
    "gal",
    "hel",
    "jor",
    "kes",
    "lin",
    "mar",
    "nor",
    "pel",
    "quin",
    "ros",
    "sel",
    "tam",
    "ul",
    "var",
    "wen",
    "yor",
    "zan",
]


def _word(rng: secrets.SystemRandom, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()


def canary_values() -> dict[str, Any]:
    """Values no real person has: invented names, an invented town, invented likes."""
    rng = secrets.SystemRandom()
    return {
        "name": f"{_word(rng, 2)} {_word(rng, 3)}",
        "birthday": (date(1960, 1, 1) + timedelta(days=rng.randrange(15000))).isoformat(),
        "hometown": f"{_word(rng, 3)}{rng.choice(['holt', 'wijk', 'burg', 'dam'])}",
        "likes": [f"{_word(rng, 2)} {_word(rng, 2)}" for _ in range(3)],
    }


def apps_needing_canaries() -> list[Application]:
    non_basic = {name for name, p in PERMISSIONS.items() if not p.basic}
    seeded = set(CanaryAccount.objects.values_list("app_id", flat=True))
    return [
        app
        for app in Application.objects.filter(status=AppStatus.LIVE).order_by("pk")
        if app.pk not in seeded and set(app.approved_permissions or ()) & non_basic
    ]


def do_seed_canary(app: Application) -> CanaryAccount:
    """Create the app's seed account and install the app with every permission it may
    ask for (email as the relay address)."""
    values = canary_values()
    with transaction.atomic():
        person = Person.objects.create_user(
            email=f"canary-{secrets.token_hex(8)}@canary.invalid",
            password=None,  # unusable: staff operate it through the app, never by password
            name=values["name"],
            birthday=date.fromisoformat(values["birthday"]),
            hometown=values["hometown"],
            likes=values["likes"],
        )
        scopes = {"openid", "profile", "email", *(app.approved_permissions or ())}
        do_grant_consent(person, app, scopes & PERMISSIONS.keys(), email_choice="relay")
        canary = CanaryAccount.objects.create(
            person=person,
            app_id=app.pk,
            values=values,
            relay_address=relay_address(app.pk, person.pk).lower(),
        )
    return canary


def do_seed_canaries() -> list[CanaryAccount]:
    """A seed account for every live app with non-basic permissions that has none."""
    made = [do_seed_canary(app) for app in apps_needing_canaries()]
    from consentry.detection.engine import detector

    detector().refresh_canaries()
    return made


# --- canary check ------------------------------------------------------------------------


@dataclass
class Attribution:
    app_id: int
    app_name: str
    ids: int = 0
    canary_values: int = 0
    relay_addresses: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def evidence(self) -> int:
        return self.ids + self.canary_values + self.relay_addresses


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def read_records(text: str) -> Iterator[str]:
    """Every string in a leaked file: JSON Lines (or one JSON document), else CSV."""
    stripped = text.lstrip()
    if stripped[:1] in "[{":
        try:
            yield from _strings(json.loads(stripped))
            return
        except ValueError:
            pass
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            parsed = [json.loads(line) for line in lines]
        except ValueError:
            parsed = None
        if parsed is not None:
            for record in parsed:
                yield from _strings(record)
            return
    for row in csv.reader(io.StringIO(text)):
        yield from row


def check_text(text: str) -> list[Attribution]:
    """The apps a leaked file came from, most evidence first (empty: none)."""
    strings = [s.strip() for s in read_records(text) if s and s.strip()]
    candidates = sorted({m for s in strings for m in SCOPED_ID.findall(s.lower())})
    apps = dict(Application.objects.values_list("pk", "name"))
    found: dict[int, Attribution] = {}

    def hit(app_id: int) -> Attribution:
        if app_id not in found:
            found[app_id] = Attribution(app_id, apps.get(app_id, f"app {app_id}"))
        return found[app_id]

    if candidates:
        for app_id in apps:
            decoded = person_ids_for(app_id, candidates)
            n = sum(1 for pid in decoded if pid is not None)
            if n:
                a = hit(app_id)
                a.ids += n
                a.examples += [c for c, pid in zip(candidates, decoded, strict=True) if pid][:3]
    relay = {c.relay_address: c for c in CanaryAccount.objects.all()}
    values: dict[str, CanaryAccount] = {}
    for canary in relay.values():
        v = canary.values or {}
        for text_value in [v.get("name"), v.get("hometown"), *(v.get("likes") or [])]:
            if text_value:
                values[str(text_value).lower()] = canary
    for s in strings:
        low = s.lower()
        if low in relay:
            a = hit(relay[low].app_id)
            a.relay_addresses += 1
        elif low in values:
            a = hit(values[low].app_id)
            a.canary_values += 1
            if len(a.examples) < 3:
                a.examples.append(s)
    return sorted(found.values(), key=lambda a: (-a.evidence, a.app_id))


def check_file(path: Path, *, record: bool = True) -> list[Attribution]:
    """`consentry canary check FILE`: name the app(s) a leaked file came from and, with
    `record`, store a sighting for each (which marks earlier deletion attestations false)."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    text = path.read_bytes().decode("utf-8", errors="replace")
    found = check_text(text)
    if record:
        for a in found:
            kind = CanarySighting.Kind.FILE_ID if a.ids else CanarySighting.Kind.FILE_VALUE
            do_record_sighting(
                a.app_id,
                kind,
                f"{path.name}: {a.ids} ids, {a.canary_values} canary values, "
                f"{a.relay_addresses} relay addresses",
            )
    return found


def mail_received(address: str) -> CanaryAccount | None:
    """`consentry canary mail-received ADDRESS`: mail reached a canary's relay address.
    Records the sighting (proof against any earlier deletion attestation); None when the
    address is no canary's."""
    canary = CanaryAccount.objects.filter(relay_address=address.strip().lower()).first()
    if canary is None:
        return None
    do_record_sighting(
        canary.app_id,
        CanarySighting.Kind.MAIL,
        f"mail to {canary.relay_address}",
        canary,
        seen_at=timezone.now(),
    )
    return canary
