"""Contract every registered policy passes, then each policy's own order."""

from __future__ import annotations

import random
from array import array

import pytest

from packrat.policies import POLICIES, make_policy
from packrat.policies.base import ABSENT
from packrat.policies.s3gdsf import LazyGDSF
from packrat.simulator.keyed import KeyedPolicy


def check(policy: KeyedPolicy) -> None:
    """diskcache-style consistency check of the accounting."""
    sizes = [size for size in policy.policy.sizes if size != ABSENT]
    assert policy.used == sum(sizes)
    assert len(policy) == len(sizes) == len(policy.policy)


@pytest.fixture(params=sorted(POLICIES))
def policy(request: pytest.FixtureRequest) -> KeyedPolicy:
    return KeyedPolicy(request.param)


class TestContract:
    def test_every_policy_builds_with_no_kwargs_and_with_a_clock(self) -> None:
        for name in POLICIES:
            assert make_policy(name).name == name
            assert make_policy(name, clock=lambda: 0.0).clock() == 0.0

    def test_unknown_name_is_a_key_error(self) -> None:
        with pytest.raises(KeyError):
            make_policy("nope")
        with pytest.raises(KeyError):
            KeyedPolicy("nope")

    def test_insert_tracks_key_and_bytes(self, policy: KeyedPolicy) -> None:
        policy.insert("a", 10)
        policy.insert("b", 5)
        assert "a" in policy and "b" in policy and "c" not in policy
        assert len(policy) == 2 and policy.used == 15
        check(policy)

    def test_insert_twice_raises(self, policy: KeyedPolicy) -> None:
        policy.insert("a", 1)
        with pytest.raises(KeyError):
            policy.insert("a", 1)

    def test_unknown_keys_are_ignored(self, policy: KeyedPolicy) -> None:
        policy.access("ghost")
        policy.remove("ghost")
        assert len(policy) == 0 and policy.used == 0

    def test_remove_forgets(self, policy: KeyedPolicy) -> None:
        for i in range(5):
            policy.insert(i, 10)
        policy.access(2)
        policy.remove(2)
        assert 2 not in policy and policy.used == 40
        check(policy)
        victims = policy.choose_victims(10**9)
        assert sorted(k for k, _ in victims) == [0, 1, 3, 4]

    def test_choose_victims_frees_enough_or_empties(self, policy: KeyedPolicy) -> None:
        for i in range(20):
            policy.insert(i, i + 1)
            if i % 3 == 0:
                policy.access(i)
        victims = policy.choose_victims(30)
        assert sum(size for _, size in victims) >= 30
        assert all(key not in policy for key, _ in victims)
        check(policy)
        rest = policy.choose_victims(10**9)
        assert len(policy) == 0 and policy.used == 0
        assert len(victims) + len(rest) == 20
        assert policy.choose_victims(1) == []

    def test_random_workload_keeps_accounting(self, policy: KeyedPolicy) -> None:
        rng = random.Random(7)
        capacity = 1000
        for _ in range(5000):
            key = rng.randrange(200)
            size = rng.choice((1, 8, 40, 90))
            if key in policy:
                if rng.random() < 0.05:
                    policy.remove(key)
                else:
                    policy.access(key)
            elif policy.admit(size, capacity):
                policy.make_room(size, capacity, low_water=rng.choice((1.0, 0.9)))
                policy.insert(key, size)
                assert policy.used <= capacity
        check(policy)


class TestMakeRoom:
    def test_nothing_evicted_while_it_fits(self) -> None:
        lru = KeyedPolicy("lru")
        lru.insert("a", 60)
        assert lru.make_room(40, 100) == []

    def test_low_water_frees_below_the_target(self) -> None:
        lru = KeyedPolicy("lru")
        for i in range(10):
            lru.insert(i, 10)
        victims = lru.make_room(10, 100, low_water=0.5)
        assert [k for k, _ in victims] == [0, 1, 2, 3, 4, 5]
        assert lru.used + 10 <= 50

    def test_admit_refuses_objects_larger_than_the_cache(self) -> None:
        for name in POLICIES:
            assert not KeyedPolicy(name).admit(101, 100)


def evict_order(name: str, inserts: list[tuple[str, int]], hits: list[str]) -> list[str]:
    policy = KeyedPolicy(name)
    for key, size in inserts:
        policy.insert(key, size)
    for key in hits:
        policy.access(key)
    return [key for key, _ in policy.choose_victims(10**9)]


def test_lru_evicts_least_recently_used() -> None:
    assert evict_order("lru", [("a", 1), ("b", 1), ("c", 1)], ["a"]) == ["b", "c", "a"]


def test_fifo_ignores_hits() -> None:
    assert evict_order("fifo", [("a", 1), ("b", 1), ("c", 1)], ["a"]) == ["a", "b", "c"]


def test_sieve_spares_visited_keys_once() -> None:
    sieve = KeyedPolicy("sieve")
    for key in "abcd":
        sieve.insert(key, 1)
    sieve.access("a")
    sieve.access("c")
    assert [k for k, _ in sieve.choose_victims(1)] == ["b"]
    sieve.insert("e", 1)
    # the hand resumes after "b": "c" loses its bit, "d" goes
    assert [k for k, _ in sieve.choose_victims(1)] == ["d"]
    assert [k for k, _ in sieve.choose_victims(1)] == ["e"]
    assert [k for k, _ in sieve.choose_victims(1)] == ["a"]


def test_gdsf_evicts_larger_files_first_at_equal_hits() -> None:
    order = evict_order("gdsf", [("small", 10), ("big", 1000), ("mid", 100)], [])
    assert order == ["big", "mid", "small"]


def test_gdsf_keeps_popular_large_files() -> None:
    order = evict_order("gdsf", [("small", 10), ("big", 20)], ["big", "big", "big"])
    assert order == ["small", "big"]


def test_lfuda_ignores_size() -> None:
    order = evict_order("lfuda", [("big", 1000), ("small", 10)], ["big"])
    assert order == ["small", "big"]


@pytest.mark.parametrize("name", ["s3fifo", "s3gdsf"])
def test_s3_policies_evict_one_hit_wonders_before_reused_objects(name: str) -> None:
    policy = KeyedPolicy(name)
    capacity = 100
    for key in ("hot", "w1", "w2", "w3"):
        policy.make_room(10, capacity)
        policy.insert(key, 10)
    for _ in range(2):
        policy.access("hot")
    victims = policy.make_room(80, capacity)
    assert "hot" not in [k for k, _ in victims]
    assert "hot" in policy


@pytest.mark.parametrize("name", ["s3fifo", "s3gdsf"])
def test_s3_policies_refuse_objects_that_would_flush_probation(name: str) -> None:
    policy = KeyedPolicy(name)
    small = round(100 * policy.small_ratio)  # the probation queue of a 100-byte cache
    assert policy.admit(small - 1, 100)
    assert not policy.admit(small, 100)


def test_s3gdsf_stores_large_objects_first_in_line() -> None:
    """What S3-FIFO would refuse is stored (the server keeps every upload) but leaves first."""
    policy = KeyedPolicy("s3gdsf")
    capacity = 100
    assert 5 < capacity * policy.small_ratio < 30
    for key in ("a", "b"):
        policy.make_room(5, capacity)
        policy.insert(key, 5)
    policy.make_room(30, capacity)
    policy.insert("big", 30)
    assert [k for k, _ in policy.make_room(70, capacity)] == ["big"]
    policy.make_room(30, capacity)
    policy.insert("big", 30)  # not remembered by the ghost: back on probation
    assert [k for k, _ in policy.choose_victims(1)] == ["big"]


def test_s3gdsf_main_caps_hits() -> None:
    policy = KeyedPolicy("gdsf", size_exponent=0.0, hit_cap=3)
    policy.insert("old", 10)
    for _ in range(50):
        policy.access("old")
    policy.insert("new", 10)
    for _ in range(3):
        policy.access("new")
    # at equal capped hits the one pushed first goes first
    assert [k for k, _ in policy.choose_victims(1)] == ["old"]


@pytest.mark.parametrize("name", ["s3fifo", "s3gdsf"])
def test_s3_ghost_hit_skips_probation(name: str) -> None:
    policy = KeyedPolicy(name)
    capacity = 100
    size = round(capacity * policy.small_ratio) - 1  # small enough for the ghost
    first = capacity // size + 1
    for i in range(first):
        policy.make_room(size, capacity)
        policy.insert(i, size)
    assert 0 not in policy  # evicted from probation, remembered by the ghost
    policy.make_room(size, capacity)
    policy.insert(0, size)
    for i in range(first, 3 * first):  # a stream of one-hit wonders
        policy.make_room(size, capacity)
        policy.insert(i, size)
    assert 0 in policy


def lazy_gdsf(sizes: list[int], **kwargs) -> LazyGDSF:
    """A ``LazyGDSF`` over slots ``0 .. len(sizes) - 1``, sized as ``S3GDSF`` sizes its own."""
    main = LazyGDSF(array("q", sizes), **kwargs)
    main._resize(len(sizes))
    return main


def test_lazy_gdsf_credits_hits_when_a_key_surfaces() -> None:
    main = lazy_gdsf([10, 10, 10], size_exponent=0.0, hit_cap=3)  # slots 0, 1, 2: a, b, c
    for slot in range(3):
        main.insert(slot, 10)
    main.access(0)
    main.access(0)
    main.access(1)
    # a and b surface first, are placed again by their hits, and outlive c
    assert [slot for slot, _ in main.choose_victims(10**9)] == [2, 1, 0]


def test_lazy_gdsf_unproven_keys_leave_first() -> None:
    main = lazy_gdsf([10, 10, 1])
    proven, cold, colder = range(3)
    main.insert(proven, 10)
    main.insert_unproven(cold, 10)
    main.insert_unproven(colder, 1)  # smaller, but unproven keys leave in arrival order
    assert [slot for slot, _ in main.choose_victims(10**9)] == [cold, colder, proven]


def fill(policy: KeyedPolicy, keys, size: int, capacity: int) -> list:
    """Store each key as the server does; return every victim, in order."""
    victims = []
    for key in keys:
        victims += [k for k, _ in policy.make_room(size, capacity)]
        policy.insert(key, size)
    return victims


def test_s3gdsf_keeps_what_a_cold_cache_first_sees() -> None:
    """Until the first eviction, newcomers beyond probation go to main unproven (S3-FIFO)."""
    policy = KeyedPolicy("s3gdsf")
    capacity = 200  # probation: 20 bytes, two keys
    cold = [f"w{i}" for i in range(1, 19)]
    assert fill(policy, ["p1", "p2", *cold], 10, capacity) == []
    policy.access("w2")
    # main is full of unproven keys: the oldest unhit one leaves first ...
    assert fill(policy, ["n1"], 10, capacity) == ["w1"]
    # ... and after that first eviction newcomers wait on probation again
    assert fill(policy, ["n2", "n3"], 10, capacity) == ["p1", "p2"]
    assert all(key in policy for key in cold[1:])


def test_s3gdsf_takes_room_for_a_large_upload_from_probation() -> None:
    policy = KeyedPolicy("s3gdsf")
    capacity = 200  # probation: 20 bytes
    fill(policy, ["a1", "a2", *(f"b{i}" for i in range(1, 19))], 10, capacity)
    assert fill(policy, ["x"], 5, capacity) == ["b1"]  # probation: a1, a2, x
    # 20 bytes is probation's size: the room comes from a1 and a2, not from main's b2
    assert fill(policy, ["big"], 20, capacity) == ["a1", "a2"]
    assert "b2" in policy and "x" in policy


@pytest.mark.parametrize("reread", [True, False])
def test_s3gdsf_ghost_reach_follows_what_ghost_admissions_earn(reread: bool) -> None:
    """Objects re-requested about 0.7 cache sizes after leaving probation come
    back through the ghost; the reach grows if they are then read in main and
    shrinks if they never are."""
    policy = KeyedPolicy("s3gdsf")
    capacity = 1000
    start = policy.reach
    for i in range(3000):
        fill(policy, [("new", i)], 10, capacity)
        old = ("new", i - 80)
        if i >= 80 and old not in policy:
            fill(policy, [old], 10, capacity)  # a ghost hit: straight to main
        if reread and i >= 120 and ("new", i - 120) in policy:
            policy.access(("new", i - 120))
    assert (policy.reach > start) if reread else (policy.reach < start)
