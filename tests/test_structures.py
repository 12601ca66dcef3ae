"""The compact structures behind the index and the policies, against plain dicts and lists.

Hypothesis drives each through random operations next to a model made of
Python's own containers and checks they agree after every step; sizes are
kept small enough that hash-table resizes, page splits and page rewrites
happen many times per example.
"""

from __future__ import annotations

from collections import OrderedDict

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from packrat.coordinator.keytable import PAGE_KEYS, KeyTable
from packrat.policies.ghost import FINGERPRINT, MARK_BITS, Ghost
from packrat.structures import ranking as ranking_module
from packrat.structures.links import Links, Queue
from packrat.structures.ranking import Ranking
from packrat.structures.ring import CHUNK, WRAP

# Few distinct first segments and short tails, so prefixes share many keys;
# some keys are long so pages fill by bytes as well as by count.
KEYS = st.builds(
    lambda head, tail, pad: f"{head}/{tail}{'x' * pad}".encode(),
    st.sampled_from(["a", "ab", "b", "ba", "c"]),
    st.integers(0, 3000),
    st.sampled_from([0, 0, 0, 900]),
)
PREFIXES = st.sampled_from([b"", b"a", b"a/", b"ab/", b"b", b"b/1", b"c/2", b"z"])


class KeyTableMachine(RuleBasedStateMachine):
    """``KeyTable`` against a dict ``key -> slot`` and ``sorted``."""

    def __init__(self) -> None:
        super().__init__()
        self.table = KeyTable()
        self.model: dict[bytes, int] = {}

    @initialize(keys=st.lists(KEYS, min_size=300, max_size=700, unique=True), bulk=st.booleans())
    def fill(self, keys: list[bytes], bulk: bool) -> None:
        if bulk:  # as start-up does: slot n holds the n-th key
            keys.sort()
            self.table.build(keys)
            self.model = {key: slot for slot, key in enumerate(keys)}
            return
        for key in keys:
            self.add(key)

    @rule(key=KEYS)
    def add(self, key: bytes) -> None:
        if key in self.model:
            return
        slot = self.table.add(key)
        assert slot not in self.model.values()
        self.model[key] = slot

    @precondition(lambda self: self.model)
    @rule(data=st.data(), count=st.integers(1, 200))
    def remove(self, data: st.DataObject, count: int) -> None:
        for _ in range(min(count, len(self.model))):
            key = data.draw(st.sampled_from(sorted(self.model)))
            assert self.table.remove(self.model.pop(key)) == key

    @rule(key=KEYS)
    def find(self, key: bytes) -> None:
        assert self.table.find(key) == self.model.get(key, -1)

    @rule(prefix=PREFIXES, after=st.one_of(st.just(b""), KEYS), limit=st.integers(1, 300))
    def list_keys(self, prefix: bytes, after: bytes, limit: int) -> None:
        expected = sorted(k for k in self.model if k.startswith(prefix) and k > after)[:limit]
        assert self.table.list_keys(prefix, after, limit) == expected

    @invariant()
    def agrees(self) -> None:
        table = self.table
        assert len(table) == len(self.model)
        assert [table.key(slot) for slot in table.slots()] == sorted(self.model)
        assert all(table.key(slot) == key for key, slot in self.model.items())
        # removals leave no sparse pages behind: small ones join a neighbour
        assert len(table._order) <= len(self.model) // (PAGE_KEYS // 2) + 2


KeyTableMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=25, deadline=None)
TestKeyTable = KeyTableMachine.TestCase


class GhostMachine(RuleBasedStateMachine):
    """``Ghost`` against an ``OrderedDict`` of ``fingerprint -> (size, clock)``.

    The model is what a ghost of full 64-bit idents kept, keyed by the 48
    bits the ghost keeps: idents that share them are one key to both (the
    collision the ghost's docstring states, checked on its own below).
    Sizes up to a terabyte push clock offsets past 32 bits now and then.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ghost = Ghost()
        self.model: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self.clock = 0

    @initialize(first=st.sampled_from([0, WRAP + 1 - 2 * CHUNK, 5 * (WRAP + 1) - CHUNK]))
    def start_at(self, first: int) -> None:
        """Number entries from ``first``, so they cross ``2**31`` (chains keep them ``& WRAP``)."""
        ghost = self.ghost
        ghost._head = first
        for ring in (ghost._high, ghost._low, ghost._offset, ghost._chain):
            ring.start = ring.end = first
        ghost._first_mark = first >> MARK_BITS

    @rule(
        ident=st.integers(-(2**63), 2**63 - 1),
        size=st.one_of(st.integers(0, 10**6), st.integers(0, 10**12)),
    )
    def push(self, ident: int, size: int) -> None:
        if ident & FINGERPRINT in self.model:
            return
        self.clock += size
        self.ghost.push(ident, size)
        self.model[ident & FINGERPRINT] = (size, self.clock)

    @rule(count=st.integers(1, 3000), size=st.integers(1, 5))
    def push_many(self, count: int, size: int) -> None:
        """Enough entries to span chunks of the rings and resizes of the buckets."""
        start = len(self.model) * 7919 + 1
        for n in range(count):
            self.push(start + n * 104729, size)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), high=st.integers(-(2**15), 2**15 - 1))
    def take(self, data: st.DataObject, high: int) -> None:
        """Take a fingerprint kept, by an ident with any 16 bits above it."""
        fingerprint = data.draw(st.sampled_from(list(self.model)))
        ident = high << 48 | fingerprint
        assert self.ghost.take(ident) == self.model.pop(fingerprint)
        assert self.ghost.take(ident) is None

    @precondition(lambda self: self.model)
    @rule(count=st.integers(1, 2000))
    def pop_oldest(self, count: int) -> None:
        for _ in range(min(count, len(self.model))):
            assert self.ghost.pop_oldest() == self.model.popitem(last=False)[1][0]

    @invariant()
    def agrees(self) -> None:
        ghost = self.ghost
        assert len(ghost) == len(self.model)
        assert ghost.used == sum(size for size, _ in self.model.values())
        assert ghost.clock == self.clock
        # the oldest entry kept is alive: entries taken do not pile up behind it
        assert ghost._head == ghost._chain.end or ghost._chain[ghost._head] >= -1
        assert set(ghost._big) <= set(range(ghost._head, ghost._chain.end))
        for fingerprint in list(self.model)[:50]:
            assert fingerprint in ghost


GhostMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=30, deadline=None)
TestGhost = GhostMachine.TestCase


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["push", "push_front", "pop", "remove", "move_to_end"]),
        st.integers(0, 30),
        st.booleans(),  # which of two queues sharing the links
    ),
    max_size=300,
)


@settings(max_examples=80, deadline=None)
@given(OPERATIONS)
def test_queues_sharing_links_behave_as_lists(operations: list[tuple[str, int, bool]]) -> None:
    links = Links()
    links.resize(31)
    queues = (Queue(links), Queue(links))
    models: tuple[list[int], list[int]] = ([], [])
    for operation, slot, second in operations:
        queue, model = queues[second], models[second]
        queued = slot in models[0] or slot in models[1]
        if operation in ("push", "push_front") and not queued:
            if operation == "push":
                queue.push(slot)
                model.append(slot)
            else:
                queue.push_front(slot)
                model.insert(0, slot)
        elif operation == "pop" and model:
            assert queue.pop() == model.pop(0)
        elif operation in ("remove", "move_to_end") and slot in model:
            getattr(queue, operation)(slot)
            model.remove(slot)
            if operation == "move_to_end":
                model.append(slot)
        for each, expected in zip(queues, models, strict=True):
            assert list(each) == expected and len(each) == len(expected)


def test_idents_sharing_48_bits_are_one_key_to_the_ghost() -> None:
    """The one way the ghost differs from one of full idents: a fingerprint collision."""
    ghost, ident = Ghost(), 0x1234_5678_9ABC_DEF0
    other = ident ^ (1 << 60)  # another key's hash, equal in its low 48 bits
    ghost.push(ident, 10)
    assert other in ghost
    assert ghost.take(other) == (10, 10)  # a ghost hit for a key never remembered
    assert ident not in ghost and len(ghost) == 0


def test_a_ghost_spanning_many_chunks_keeps_sizes_and_order() -> None:
    """Past ``CHUNK`` entries the oldest chunks are dropped; sizes still follow from the clocks."""
    ghost, model = Ghost(), OrderedDict()
    for n in range(2 * CHUNK + 100):
        ghost.push(n * 31 + 7, n % 5 + 1)
        model[n * 31 + 7] = n % 5 + 1
    for n in range(0, 2 * CHUNK, 3):  # holes, some at the head
        assert ghost.take(n * 31 + 7)[0] == model.pop(n * 31 + 7)
    while len(model) > 10:
        assert ghost.pop_oldest() == model.popitem(last=False)[1]
    assert ghost.used == sum(model.values()) and len(ghost) == 10
    assert all(ident in ghost for ident in model)


# Slot 256 is the bytes 00 01 00 00 and slot 1 is 01 00 00 00: a byte search that matched
# across two entries would find 1 in 256 followed by 0.
MAX_SLOT = 300
SLOTS = st.integers(0, MAX_SLOT)


class RankingMachine(RuleBasedStateMachine):
    """``Ranking`` against a sorted list of ``(priority, placement number, slot)``.

    Few distinct priorities, so ties span blocks; a small ``LOAD`` (patched
    per example) makes blocks split and join many times.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ranking = Ranking()
        self.model: list[tuple[float, int, int]] = []
        self.placed = 0

    @rule(priority=st.sampled_from([0.0, 0.5, 1.0, 2.0, 1e300]), slots=st.lists(SLOTS, max_size=40))
    def add(self, priority: float, slots: list[int]) -> None:
        for slot in slots:
            if slot in self.ranking:
                continue
            self.ranking.add(priority, slot)
            self.placed += 1
            self.model.append((priority, self.placed, slot))
            self.model.sort()

    @precondition(lambda self: self.model)
    @rule(data=st.data(), count=st.integers(1, 40))
    def remove(self, data: st.DataObject, count: int) -> None:
        for _ in range(min(count, len(self.model))):
            entry = data.draw(st.sampled_from(self.model))
            self.ranking.remove(entry[2])
            self.model.remove(entry)

    @precondition(lambda self: self.model)
    @rule(count=st.integers(1, 40))
    def pop_first(self, count: int) -> None:
        for _ in range(min(count, len(self.model))):
            priority, _, slot = self.model.pop(0)
            assert self.ranking.pop_first() == (priority, slot)

    @invariant()
    def agrees(self) -> None:
        ranking = self.ranking
        assert len(ranking) == len(self.model)
        assert list(ranking) == [(priority, slot) for priority, _, slot in self.model]
        ranked = {slot for _, _, slot in self.model}
        assert {slot for slot in range(MAX_SLOT + 2) if slot in ranking} == ranked
        assert ranking._maxes == [ranking._priorities[block][-1] for block in ranking._order]


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranking_module, "LOAD", 4)


RankingMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)


def test_ranking_behaves_as_a_sorted_list(small_blocks: None) -> None:
    run_state_machine_as_test(RankingMachine, settings=RankingMachine.TestCase.settings)
