"""The synthetic world generator, without a database: deterministic, realistic friend
counts with a heavy tail, and never past the 5,000 cap."""

from __future__ import annotations

import numpy as np

from consentry.people.fields import MAX_FRIENDS, PROFILE_FIELDS
from consentry.world.generator import (
    WorldParams,
    generate_world,
    sample_degrees,
    sample_friendships,
)
from consentry.world.records import parse_person, parse_post


def test_degree_sampler_has_mean_200_a_heavy_tail_and_the_cap():
    degrees = sample_degrees(np.random.default_rng(7), 100_000, 200.0)
    assert 190 <= degrees.mean() <= 210
    median = np.median(degrees)
    assert 80 <= median <= 130  # median ~ half the mean, as on Facebook (Ugander 2011)
    assert np.percentile(degrees, 99) > 5 * median  # heavy tail
    assert degrees.max() == MAX_FRIENDS  # the tail reaches the cap and stops there


def test_same_seed_gives_the_same_world():
    a = generate_world(WorldParams(400, seed=11, mean_friends=20))
    b = generate_world(WorldParams(400, seed=11, mean_friends=20))
    assert a.people == b.people
    assert a.posts == b.posts
    assert np.array_equal(a.friendships, b.friendships)


def test_different_seeds_give_different_worlds():
    a = generate_world(WorldParams(400, seed=11, mean_friends=20))
    b = generate_world(WorldParams(400, seed=12, mean_friends=20))
    assert a.people != b.people
    assert not np.array_equal(a.friendships, b.friendships)


def test_small_world_hits_its_configured_mean_and_never_passes_the_cap():
    params = WorldParams(3000, seed=3, mean_friends=40)
    world = generate_world(params)
    degrees = world.degrees()
    assert abs(degrees.mean() - params.target_mean) < 0.1 * params.target_mean
    assert degrees.max() <= MAX_FRIENDS
    pairs = world.friendships
    assert (pairs[:, 0] < pairs[:, 1]).all()  # no self-friendship, each pair once
    assert len(np.unique(pairs[:, 0] * 3000 + pairs[:, 1])) == len(pairs)


def test_small_world_target_mean_is_scaled_down():
    assert WorldParams(2000, seed=1).target_mean == 199.9
    assert WorldParams(100_000, seed=1).target_mean == 200.0


def test_friendship_sampler_drops_friendships_past_a_cap():
    params = WorldParams(2000, seed=1, max_friends=50)
    weights = np.full(2000, 10.0)
    weights[:5] = 400.0  # five would-be hubs
    pairs = sample_friendships(np.random.default_rng(1), weights, params)
    degrees = np.bincount(pairs.ravel(), minlength=2000)
    assert degrees.max() == 50
    assert degrees[:5].min() >= 45  # a hub only loses friendships to other full hubs


def test_friends_of_friends_are_often_friends():
    """The local draw gives clustering well above a random graph of the same density."""
    world = generate_world(WorldParams(3000, seed=5, mean_friends=30))
    n = len(world.people)
    friends: list[set[int]] = [set() for _ in range(n)]
    for a, b in world.friendships.tolist():
        friends[a].add(b)
        friends[b].add(a)
    closed = total = 0
    for person in range(0, n, 10):
        mine = sorted(friends[person])
        for i, a in enumerate(mine):
            for b in mine[i + 1 :]:
                total += 1
                closed += b in friends[a]
    density = 2 * len(world.friendships) / (n * (n - 1))
    assert closed / total > 5 * density


def test_generated_records_are_valid_import_records_with_mostly_default_sharing():
    world = generate_world(WorldParams(1000, seed=9, mean_friends=10))
    for person in world.people[:200]:
        assert parse_person(person.to_json()) == person
        assert person.email.endswith("@example.test")
    for post in world.posts[:200]:
        assert parse_post(post.to_json()) == post
    emails = {p.email for p in world.people}
    assert len(emails) == len(world.people)
    sharers = sum(1 for p in world.people if p.friend_share)
    assert 0 < sharers < 0.1 * len(world.people)  # opt-in is off by default
    for field in PROFILE_FIELDS:
        audiences = {p.audience[PROFILE_FIELDS.index(field)] for p in world.people}
        assert len(audiences) >= 2 or field == "name"
    assert {p.language for p in world.people} == {"en", "nl"}
