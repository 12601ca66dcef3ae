"""The store's invariants under random commits, overwrites, deletes, vanishing staging
files, crashes mid-commit and restarts (clean and kill -9): a hypothesis state machine.

It drives a real ``Coordinator`` on real files in a temporary root.  Its
file work (``FileWork``) is queued and run when a rule says so, as the
server's worker thread runs it: commits and deletes may be decided while
earlier ones still wait for their files, and the ``du`` bound is checked
after every single job.  A clean restart finishes the file work, snapshots
and builds a new coordinator; a ``kill -9`` drops the file work not done yet
and builds one without a snapshot (what survives a killed process is
exactly what is on disk); a crash mid-commit runs the commit's steps up to a
point and then restarts.  After every step (``packrat.store``'s docstring):

1. once the file work is done, the files under ``objects/`` are exactly the index's keys;
2. the index's byte count is what those files are charged, plus the fan-out
   directories' growth, never more than ``max_size``, and ``du -s`` of the
   root stays within ``max_size + FIXED_OVERHEAD``;
3. every acknowledged object is readable, whole, with its digest, until it is
   evicted, deleted or overwritten.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from packrat.coordinator import protocol
from packrat.coordinator.filework import FileWork
from packrat.coordinator.protocol import Commit, Delete, Touch
from packrat.coordinator.service import Coordinator
from packrat.coordinator.snapshotter import SnapshotJob
from packrat.core.errors import ErrorCode
from packrat.core.settings import Settings
from packrat.store import StagedFile, open_entry, open_key, sweep_staging
from packrat.store.accounting import charge
from packrat.store.layout import BLOCK, FANOUT, FIXED_OVERHEAD
from packrat.store.reader import data_matches
from tests.support.disk import du

MAX_SIZE = 16 * BLOCK
KEYS = st.sampled_from([f"k{n}" for n in range(10)])
SIZES = st.sampled_from([0, 1, 3000, 4200, 9000, 20000, 70000])  # the last is too large


@dataclass
class InFlight:
    key: str
    digest: str
    size: int
    staged: StagedFile
    replies: list = field(default_factory=list)


def _ignore(reply: object) -> None:
    pass


class StoreMachine(RuleBasedStateMachine):
    policy = "s3gdsf"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="packrat-machine-"))
        self.settings = Settings(
            cache_root=self.tmp / "cache",
            cache_max_size=MAX_SIZE,
            cache_low_water=0.9,
            cache_policy=self.policy,
        )
        self.coordinator = self._start()
        self.job: SnapshotJob | None = None  # a snapshot being written in slices
        # key -> the digests it may hold: the acknowledged version, plus newer
        # ones whose commits wait for their file work or crashed after the rename.
        self.acked: dict[str, set[str]] = {}
        self.confirmed: dict[str, str] = {}  # key -> the digest its last reply acknowledged
        self.in_flight: list[InFlight] = []  # commits whose reply has not come
        self.ids = 0

    def teardown(self) -> None:
        self._drop_job()
        self.coordinator.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ----------------------------------------------------------

    def _start(self) -> Coordinator:
        coordinator = Coordinator(self.settings, FileWork(queued=True))
        coordinator.load()
        return coordinator

    def _run_jobs(self, limit: int = 10**9) -> None:
        """Run queued file work, checking the disk bound after each job; settle replies."""
        files = self.coordinator.files
        while limit > 0:
            before = set(self.coordinator.index.all_keys())
            if not files.run_next():
                break
            limit -= 1
            self.du_is_bounded()
            self._forget_evicted(before)  # decided as this job's claim came back
        for flight in [f for f in self.in_flight if f.replies]:
            self.in_flight.remove(flight)
            reply = flight.replies[0]
            if flight.size > MAX_SIZE // 2:
                assert reply.error == ErrorCode.TOO_LARGE
                self.acked.get(flight.key, set()).discard(flight.digest)
            else:
                assert reply.ok, reply
                if flight.key in self.acked:  # not evicted since: older versions are gone
                    self._confirm(flight.key, flight.digest)

    def _call(self, request) -> protocol.Reply:
        """Handle ``request`` and finish all file work, as if it were alone."""
        replies: list[protocol.Reply] = []
        self.coordinator.handle(request, replies.append)
        self._run_jobs()
        return replies[0]

    def _in_flight_digests(self, key: str) -> set[str]:
        """What ``key``'s commits still in flight may put in place (a too-large one never)."""
        return {f.digest for f in self.in_flight if f.key == key and f.size <= MAX_SIZE // 2}

    def _drop_job(self) -> None:
        """What a stop does to a snapshot being written: it is abandoned."""
        if self.job is not None:
            self.job.abort()
            self.job = None

    def _restart(self, clean: bool) -> None:
        coordinator = self.coordinator
        self._drop_job()
        if clean:
            self._run_jobs()
            assert coordinator.snapshot(clean=True)
        else:  # killed: the file work not done yet never will be; its replies never come
            coordinator.files = FileWork(queued=True)
            for flight in self.in_flight:  # so their front ends remove what they staged
                flight.staged.discard()
            for key in {flight.key for flight in self.in_flight}:
                # What the key may hold is its acknowledged version, or nothing (even
                # when a dropped commit had the same digest).
                if key in self.acked and key in self.confirmed:
                    self.acked[key] = {self.confirmed[key]}
                else:
                    self._forget(key)
            self.in_flight.clear()
        # Nothing whose file is in place is lost by a restart (max_size is the same).
        before = set(coordinator.index.all_keys()) - set(coordinator.pending)
        coordinator.close()
        self.coordinator = self._start()
        assert before <= set(self.coordinator.index.all_keys())

    def _stage(self, key: str, size: int) -> tuple[StagedFile, int, str]:
        data = os.urandom(size)
        staged = StagedFile(self.coordinator.layout)
        staged.write(data)
        _, file_size = staged.seal(key, "f.bin", "application/octet-stream")
        return staged, file_size, hashlib.sha256(data).hexdigest()

    def _next_id(self) -> int:
        self.ids += 1
        return self.ids

    def _forget_evicted(self, before: set[str], keep: str | None = None) -> None:
        """Acknowledged keys that left the index were evicted: they may be gone.

        Commits of the key still in flight may yet put it back: their
        digests stay expected (a commit decided after the eviction is
        acknowledged, and its object kept, as any other).
        """
        now = set(self.coordinator.index.all_keys())
        for key in before - now:
            if key == keep:
                continue
            self._forget(key)
            coming = self._in_flight_digests(key)
            if coming:
                self.acked[key] = coming

    def _confirm(self, key: str, digest: str) -> None:
        """A commit of ``key`` was acknowledged: it holds ``digest`` or a newer commit's."""
        self.confirmed[key] = digest
        self.acked[key] = {digest} | self._in_flight_digests(key)

    def _forget(self, key: str) -> None:
        self.acked.pop(key, None)
        self.confirmed.pop(key, None)

    # -- rules ------------------------------------------------------------

    @rule(key=KEYS, size=SIZES)
    def commit(self, key: str, size: int) -> None:
        self._run_jobs()
        staged, file_size, digest = self._stage(key, size)
        before = set(self.coordinator.index.all_keys())
        reply = self._call(Commit(self._next_id(), time.time() + 60, key, staged.name, file_size))
        if size > MAX_SIZE // 2:
            assert reply.error == ErrorCode.TOO_LARGE
            return
        assert reply.ok, reply
        after = set(self.coordinator.index.all_keys())
        assert len(before - after - {key}) <= reply.evicted
        self._forget_evicted(before, keep=key)
        self._confirm(key, digest)

    @rule(key=KEYS, size=SIZES)
    def commit_in_flight(self, key: str, size: int) -> None:
        """Decided now, its file work (and so its reply) left for later rules."""
        staged, file_size, digest = self._stage(key, size)
        flight = InFlight(key, digest, size, staged)
        self.in_flight.append(flight)
        if size <= MAX_SIZE // 2:  # the file it may hold from its rename on
            self.acked.setdefault(key, set()).add(digest)
        request = Commit(self._next_id(), time.time() + 60, key, staged.name, file_size)
        self.coordinator.handle(request, flight.replies.append)

    @rule(key=KEYS)
    def delete_in_flight(self, key: str) -> None:
        # Gone from the index at once, from the disk in its turn: until then the
        # acknowledged version may still be read.
        self.coordinator.handle(Delete(self._next_id(), time.time() + 60, key), _ignore)

    @rule(jobs=st.integers(1, 4))
    def run_file_work(self, jobs: int) -> None:
        self._run_jobs(jobs)

    @rule(key=KEYS, size=SIZES)
    def sweep_between_claim_and_publish(self, key: str, size: int) -> None:
        """The server's periodic sweep while a claimed file waits for its rename."""
        self._run_jobs()
        self.commit_in_flight(key, size)
        self.coordinator.files.run_next()  # the claim: a .commit file in staging
        sweep_staging(self.coordinator.layout, stale_after=3600, running=True)
        self._run_jobs()  # the publish finds its file (asserted with the reply)

    @rule(key=KEYS, size=SIZES)
    def commit_whose_staging_vanished(self, key: str, size: int) -> None:
        """The front end gave up and removed its file before the claim: nothing changes."""
        staged, file_size, _ = self._stage(key, size)
        staged.discard()
        self._run_jobs()
        before = self.coordinator.index.charges()
        reply = self._call(Commit(self._next_id(), time.time() + 60, key, staged.name, file_size))
        assert reply.error == ErrorCode.STAGING_MISSING
        assert self.coordinator.index.charges() == before

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        self._run_jobs()
        present = key in self.coordinator.index
        reply = self._call(Delete(self._next_id(), time.time() + 60, key))
        assert reply.ok == present
        self._forget(key)

    @rule(keys=st.lists(KEYS, max_size=5))
    def read(self, keys: list[str]) -> None:
        self.coordinator.handle(Touch(tuple(keys)))

    @rule()
    def snapshot(self) -> None:
        self._drop_job()  # one writer at a time, as in the server
        self._run_jobs()
        assert self.coordinator.snapshot()

    @rule()
    def snapshot_slice(self) -> None:
        """Write a snapshot two rows at a time between the other rules (as the server's
        loop does between messages); the last slice publishes it."""
        if self.job is None:
            self.job = self.coordinator.begin_snapshot(rows=2)
        elif self.job.step(0):
            self.job.finish()
            self.job = None

    @rule()
    def restart_clean(self) -> None:
        self._restart(clean=True)

    @rule()
    def restart_after_kill_9(self) -> None:
        self._restart(clean=False)

    @rule(key=KEYS, size=SIZES, stage=st.sampled_from(["claimed", "evicted", "renamed"]))
    def crash_mid_commit(self, key: str, size: int, stage: str) -> None:
        """Run a commit's steps up to ``stage``, then kill -9 and restart."""
        self._run_jobs()
        coordinator = self.coordinator
        staged, file_size, digest = self._stage(key, size)
        claimed = coordinator.writer.claim(staged.name, file_size, key)
        before = set(coordinator.index.all_keys())
        if stage != "claimed" and claimed.charge <= coordinator.index.capacity:
            for victim, _ in coordinator.index.make_room(claimed.charge):
                if victim != key:
                    coordinator.writer.remove(victim)
            self._forget_evicted(before, keep=key)
            if stage == "renamed":
                coordinator.writer.publish(claimed)
                self.acked.setdefault(key, set()).add(digest)
                self.confirmed[key] = digest  # in place: what a later kill -9 leaves
        must_survive = {k for k in self.acked if k in coordinator.index}
        self._drop_job()
        coordinator.close()
        self.coordinator = self._start()
        lost = must_survive - set(self.coordinator.index.all_keys())
        assert not lost, f"lost by a crash mid-commit: {lost}"

    # -- invariants -------------------------------------------------------

    @invariant()
    def du_is_bounded(self) -> None:
        """At every moment, file work done or not: the disk holds no more than max_size."""
        layout = self.coordinator.layout
        staged = du(layout.staging) - os.lstat(layout.staging).st_blocks * 512
        assert du(layout.root) - staged <= MAX_SIZE + FIXED_OVERHEAD

    @invariant()
    def files_are_the_index_at_their_charges(self) -> None:
        coordinator = self.coordinator
        if len(coordinator.files):
            return  # the index is ahead of the disk until its file work is done
        charged = {}
        for fanout in FANOUT:
            dir_fd = coordinator.layout.fanout_fds[fanout]
            for name in os.listdir(dir_fd):
                opened = open_entry(dir_fd, name)
                assert opened is not None, name
                fd, meta, info = opened
                os.close(fd)
                charged[meta.key] = charge(info, meta.key)
        index = coordinator.index
        assert set(charged) == set(index.all_keys())
        assert all(index.charge_of(key) == cost for key, cost in charged.items())
        assert index.used == sum(charged.values())
        assert index.overhead == coordinator.writer.dirs.total
        assert index.disk_bytes <= MAX_SIZE
        assert du(coordinator.layout.root) <= MAX_SIZE + FIXED_OVERHEAD
        assert os.listdir(coordinator.layout.staging) == []

    @invariant()
    def acknowledged_objects_are_readable(self) -> None:
        layout = self.coordinator.layout
        for key, digests in self.acked.items():
            opened = open_key(layout, key)
            if opened is None:  # evicted, or its file still to come
                assert key not in self.coordinator.index or key in self.coordinator.pending
                continue
            fd, meta, _ = opened
            try:
                assert meta.sha256 in digests, key
                assert data_matches(fd, meta), key
            finally:
                os.close(fd)


StoreMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreMachine = StoreMachine.TestCase


class LRUStoreMachine(StoreMachine):
    policy = "lru"


LRUStoreMachine.TestCase.settings = StoreMachine.TestCase.settings
TestLRUStoreMachine = LRUStoreMachine.TestCase


def test_a_kill_9_keeps_an_acknowledged_overwrite_when_a_dropped_commit_had_its_digest():
    """Found by CI: an empty object acknowledged over a 1-byte one, then another empty
    commit of the key dropped by a kill -9: the key still holds the acknowledged one."""
    machine = StoreMachine()
    try:
        machine.commit("k0", 1)
        machine.sweep_between_claim_and_publish("k0", 0)
        machine.commit_in_flight("k0", 0)
        machine.restart_after_kill_9()
        assert machine.acked["k0"] == {hashlib.sha256(b"").hexdigest()}
        machine.acknowledged_objects_are_readable()
    finally:
        machine.teardown()


def test_a_commit_in_flight_when_an_older_version_is_evicted_is_still_expected():
    """Found on main by hypothesis: k0's old version evicted by k3's commits while two
    commits of k0 waited for their claims; those came back acknowledged, and the model,
    having forgotten k0 with the eviction, no longer expected their object."""
    machine = LRUStoreMachine()
    try:
        machine.commit_in_flight("k0", 0)
        machine.commit_in_flight("k0", 20000)
        machine.crash_mid_commit("k0", 0, "claimed")
        machine.commit_in_flight("k2", 9000)
        machine.commit_in_flight("k3", 20000)
        machine.commit_in_flight("k3", 9000)
        machine.commit_in_flight("k0", 0)
        machine.commit_in_flight("k0", 0)
        machine.crash_mid_commit("k0", 0, "claimed")
        machine.commit_in_flight("k0", 1)
        machine.acknowledged_objects_are_readable()
    finally:
        machine.teardown()
