"""Detection figures shared through Redis by every worker process (docs/detection.md).

With CONSENTRY_REDIS_URL set, each Graph API call adds its counts to Redis and reads back
every process's totals in ONE round trip (one EVALSHA of `_CALL`, all of the app's keys in
one hash slot: `{app:42}`, so the script also runs on Redis Cluster):

- counters (calls, fields asked for and withheld, person lookups, 404s): HINCRBY on one
  hash per app, exact;
- calls in the current minute: INCR on a key that expires after two minutes, exact;
- distinct subjects and acting people, and subjects new this UTC hour / day: HyperLogLogs
  (PFADD / PFCOUNT, 12 KB per key at most, ~0.81% standard error). A process adds only
  the ids that are new to its own exact bitmap, so the cost stays O(new subjects), and
  the union over processes is still every id any process saw. The hour and day keys
  expire after their window.

Redis holds nothing that cannot be lost. The engine takes, figure by figure, the larger
of the shared value and its own exact view (both count no call twice), so a flushed or
unreachable Redis degrades detection to the per-process figures; the `DetectorState`
rows stay the durable record. The counters hash carries an `epoch`: the process that
recreates it (after a flush, an expiry, or on first use) seeds it with its own view, and
every process's next database merge lifts the counters to at least the merged totals and,
after such an epoch change or an outage, re-adds its merged bitmaps to the
HyperLogLogs.

Errors never reach the Graph API: a failing Redis opens a breaker for `RETRY_SECONDS`,
during which nothing is sent (no timeout paid per call), and one warning is logged with
the error's type only (a Redis URL may hold a password).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger("consentry.detection")

COUNTERS = ("calls", "requested_fields", "withheld_fields", "person_lookups", "not_found")
STATE_SECONDS = 30 * 86_400  # an idle app's shared state is collected after 30 days
MINUTE_SECONDS = 120
HOUR_SECONDS = 2 * 3600
DAY_SECONDS = 2 * 86_400
CLAIM_SECONDS = 30 * 86_400
RETRY_SECONDS = 5.0
TIMEOUT_SECONDS = 0.25
CHUNK = 4000  # ids per PFADD (Lua's unpack has a stack limit near 8,000)

# KEYS: counters hash, minute counter, subjects HLL, actors HLL, hour HLL, day HLL.
# ARGV: epoch, the 5 counter increments, the actor id to add ('' for none), then the
#       subject ids new to this process.
# Returns one string (cheaper to parse than an array): created (1 when this call created
# the counters hash), epoch, the 5 counters, calls this minute, then PFCOUNT of
# subjects, actors, hour, day.
_CALL = Template("""
local c = KEYS[1]
local created = redis.call('HSETNX', c, 'epoch', ARGV[1])
if created == 1 then redis.call('EXPIRE', c, $state) end
local names = {'calls', 'requested_fields', 'withheld_fields', 'person_lookups', 'not_found'}
for i = 1, 5 do
  local n = tonumber(ARGV[1 + i])
  if n ~= 0 then redis.call('HINCRBY', c, names[i], n) end
end
local minute = redis.call('INCR', KEYS[2])
if minute == 1 then redis.call('EXPIRE', KEYS[2], $minute) end
if ARGV[7] ~= '' then redis.call('PFADD', KEYS[4], ARGV[7]) end
if #ARGV >= 8 then
  for i = 8, #ARGV, $chunk do
    local j = math.min(i + $chunk - 1, #ARGV)
    redis.call('PFADD', KEYS[3], unpack(ARGV, i, j))
    redis.call('PFADD', KEYS[5], unpack(ARGV, i, j))
    redis.call('PFADD', KEYS[6], unpack(ARGV, i, j))
  end
  redis.call('EXPIRE', KEYS[5], $hour)
  redis.call('EXPIRE', KEYS[6], $day)
end
local v = redis.call('HMGET', c, 'epoch', unpack(names))
local out = {created, v[1] or '-'}
for i = 1, 5 do out[#out + 1] = v[i + 1] or '0' end
out[#out + 1] = minute
out[#out + 1] = redis.call('PFCOUNT', KEYS[3])
out[#out + 1] = redis.call('PFCOUNT', KEYS[4])
out[#out + 1] = redis.call('PFCOUNT', KEYS[5])
out[#out + 1] = redis.call('PFCOUNT', KEYS[6])
return table.concat(out, ' ')
""").substitute(
    state=STATE_SECONDS, minute=MINUTE_SECONDS, hour=HOUR_SECONDS, day=DAY_SECONDS, chunk=CHUNK
)

# KEYS: counters hash, subjects HLL, actors HLL. ARGV: state ttl, then name/value pairs.
# Lifts each counter to at least the value (never lowers one; a missing hash is left for
# the next call to create and seed) and keeps the app's keys from expiring.
_RAISE = """
local c = KEYS[1]
if redis.call('EXISTS', c) == 0 then return 0 end
for i = 2, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', c, ARGV[i]) or '0')
  local want = tonumber(ARGV[i + 1])
  if cur < want then redis.call('HSET', c, ARGV[i], want) end
end
redis.call('EXPIRE', c, ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class Shared:
    """Every process's figures for one app, as Redis holds them after a call."""

    created: bool
    epoch: str
    counters: Mapping[str, int]
    minute_calls: int
    subjects: int
    actors: int
    hour_new: int
    day_new: int


@dataclass(frozen=True, slots=True)
class CallCounts:
    """What one call adds: counter increments, the acting person when new to this
    process (else None), and the subject ids new to this process."""

    increments: Mapping[str, int]
    new_actor: int | None
    new_subjects: Iterable[int]


class SharedFigures:
    """The Redis side of the detector. Every method returns None (or does nothing) while
    Redis fails, and never raises."""

    def __init__(self, client: redis.Redis, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self.epoch = secrets.token_hex(8)  # what this process writes when it seeds
        self.outages = 0  # times the breaker opened: states heal on their next merge
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._call_sha = client.register_script(_CALL).sha  # the script's SHA-1 name
        self._raise = client.register_script(_RAISE)
        self._local = threading.local()  # each thread's own connection for the call path

    @classmethod
    def from_url(cls, url: str, prefix: str = "") -> SharedFigures:
        client = redis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),  # a failure opens the breaker instead
            protocol=2,  # the replies are flat: RESP2 parses them faster
        )
        return cls(client, prefix)

    # --- keys ------------------------------------------------------------------------

    def key(self, app_id: int, name: str) -> str:
        """`<prefix>{app:<id>}:det:<name>`: the hash tag puts an app's keys in one slot."""
        return f"{self.prefix}{{app:{app_id}}}:det:{name}"

    def _keys(self, app_id: int, now: float) -> list[str]:
        minute, hour, day = int(now // 60), int(now // 3600), int(now // 86400)
        return [
            self.key(app_id, "c"),
            self.key(app_id, f"m:{minute}"),
            self.key(app_id, "s"),
            self.key(app_id, "a"),
            self.key(app_id, f"h:{hour}"),
            self.key(app_id, f"d:{day}"),
        ]

    # --- the breaker -----------------------------------------------------------------

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            if time.monotonic() < self._down_until:
                return
            self._down_until = time.monotonic() + RETRY_SECONDS
            self.outages += 1
        # The error's type only: its text may carry the server address or credentials.
        logger.warning(
            "detection: Redis unavailable (%s); per-process figures for %.0f s",
            type(exc).__name__,
            RETRY_SECONDS,
        )

    # --- per call --------------------------------------------------------------------

    def count(self, app_id: int, call: CallCounts, now: float) -> Shared | None:
        """Add one call's counts and return every process's figures: one round trip."""
        if not self.available():
            return None
        inc = call.increments
        args: list[Any] = [
            self.epoch,
            *(inc.get(name, 0) for name in COUNTERS),
            "" if call.new_actor is None else call.new_actor,
            *call.new_subjects,
        ]
        try:
            reply = self._evalsha(self._keys(app_id, now), args)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return None
        return _shared(reply)

    def _evalsha(self, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA of the call script on this thread's own connection: half the cost of
        going through the client's pool and command layer on every call (measured)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # none yet, or a forked child
            conn = self._local.conn = self.client.connection_pool.get_connection()
            self._local.pid = os.getpid()
        try:
            try:
                conn.send_command("EVALSHA", self._call_sha, len(keys), *keys, *args)
                return conn.read_response()
            except redis.exceptions.NoScriptError:  # a restarted Redis: load it once
                self.client.script_load(_CALL)
                conn.send_command("EVALSHA", self._call_sha, len(keys), *keys, *args)
                return conn.read_response()
        except BaseException:
            self._local.conn = None
            conn.disconnect()
            self.client.connection_pool.release(conn)
            raise

    def read(self, app_id: int, now: float) -> Shared | None:
        """Every process's figures without counting a call (the staff console)."""
        if not self.available():
            return None
        c, m, s, a, h, d = self._keys(app_id, now)
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(c, ["epoch", *COUNTERS])
                pipe.get(m)
                for key in (s, a, h, d):
                    pipe.pfcount(key)
                values, minute, *counts = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return None
        epoch, *counters = values
        return Shared(
            created=False,
            epoch=(epoch or b"").decode(),
            counters={n: int(v or 0) for n, v in zip(COUNTERS, counters, strict=True)},
            minute_calls=int(minute or 0),
            subjects=int(counts[0]),
            actors=int(counts[1]),
            hour_new=int(counts[2]),
            day_new=int(counts[3]),
        )

    # --- seeding and healing (rare: a new epoch, an outage, each database merge) -----

    def seed(
        self,
        app_id: int,
        counters: Mapping[str, int],
        subjects: Iterable[int],
        actors: Iterable[int],
    ) -> None:
        """Add this process's view to counters it has just created (a new epoch)."""
        c = self.key(app_id, "c")
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for name in COUNTERS:
                    if counters.get(name):
                        pipe.hincrby(c, name, counters[name])
                self._pfadd(pipe, self.key(app_id, "s"), subjects)
                self._pfadd(pipe, self.key(app_id, "a"), actors)
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)

    def merged(
        self,
        app_id: int,
        counters: Mapping[str, int],
        subjects: Iterable[int] | None = None,
        actors: Iterable[int] | None = None,
    ) -> bool:
        """After a database merge: lift the counters to at least the merged totals, keep
        the app's keys alive, and (after an epoch change or an outage) re-add the merged
        bitmaps. False when Redis failed."""
        if not self.available():
            return False
        args: list[Any] = [STATE_SECONDS]
        for name in COUNTERS:
            args += [name, int(counters.get(name, 0))]
        keys = [self.key(app_id, "c"), self.key(app_id, "s"), self.key(app_id, "a")]
        try:
            if subjects is not None or actors is not None:
                with self.client.pipeline(transaction=False) as pipe:
                    self._pfadd(pipe, keys[1], subjects or ())
                    self._pfadd(pipe, keys[2], actors or ())
                    pipe.execute()
            self._raise(keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return False
        return True

    @staticmethod
    def _pfadd(pipe: Any, key: str, ids: Iterable[int]) -> None:
        chunk: list[int] = []
        for i in ids:
            chunk.append(i)
            if len(chunk) == CHUNK:
                pipe.pfadd(key, *chunk)
                chunk = []
        if chunk:
            pipe.pfadd(key, *chunk)

    # --- firings ---------------------------------------------------------------------

    def claim(self, app_id: int, rules: Sequence[str]) -> set[str] | None:
        """Of `rules` about to fire, the ones this process may record (SET NX): two
        processes crossing a threshold together record one firing. None while Redis
        fails (then every rule may fire, as without Redis)."""
        if not rules or not self.available():
            return None
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for rule in rules:
                    pipe.set(self.key(app_id, f"f:{rule}"), "1", nx=True, ex=CLAIM_SECONDS)
                won = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return None
        return {rule for rule, ok in zip(rules, won, strict=True) if ok}

    def release(self, app_id: int, rule: str) -> None:
        """Staff cleared the rule's firing: it may be claimed again."""
        if not self.available():
            return
        try:
            self.client.delete(self.key(app_id, f"f:{rule}"))
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)


def _shared(reply: bytes | str) -> Shared:
    text = reply.decode() if isinstance(reply, bytes) else reply
    created, epoch, *rest = text.split(" ")
    n = [int(v) for v in rest]
    return Shared(
        created=created == "1",
        epoch=epoch,
        counters=dict(zip(COUNTERS, n[:5], strict=True)),
        minute_calls=n[5],
        subjects=n[6],
        actors=n[7],
        hour_new=n[8],
        day_new=n[9],
    )


def from_settings() -> SharedFigures | None:
    """The shared figures when CONSENTRY_REDIS_URL is set, else None."""
    from django.conf import settings

    url = getattr(settings, "DETECTION_REDIS_URL", "")
    if not url:
        return None
    return SharedFigures.from_url(url, getattr(settings, "DETECTION_REDIS_PREFIX", ""))
