"""The object store's pure parts, by property: the breaker, the metadata, the backlog's mark."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from packrat.objectstore import messages
from packrat.objectstore.backlog import LAG_NS, Backlog
from packrat.objectstore.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from packrat.objectstore.metadata import decode, encode
from packrat.store import ObjectMeta

# -- the breaker ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(st.lists(st.sampled_from(["ok", "fail", "tick", "ask"]), max_size=60))
def test_breaker_opens_after_consecutive_failures_and_lets_one_probe_through(steps):
    clock = Clock()
    breaker = Breaker(failures=3, reset_after=2.0, max_reset_after=16.0, clock=clock)
    streak = 0
    for step in steps:
        before = breaker.state
        if step == "tick":
            clock.now += 1.0
        elif step == "ask":
            allowed = breaker.allow()
            if before == CLOSED:
                assert allowed
            elif before == HALF_OPEN:
                assert not allowed  # one probe at a time
            else:
                assert allowed == (clock.now >= breaker.reopen_at)
                assert breaker.state == (HALF_OPEN if allowed else OPEN)
        elif step == "ok":
            breaker.success()
            streak = 0
            assert breaker.state == CLOSED
        else:
            breaker.failure()
            if before == CLOSED:
                streak += 1
                assert breaker.state == (OPEN if streak >= 3 else CLOSED)
                if breaker.state == OPEN:
                    streak = 0
            elif before == HALF_OPEN:
                assert breaker.state == OPEN  # the probe failed: wait longer
        assert breaker.reset_after <= 16.0
        if breaker.state == OPEN:
            assert breaker.seconds_until_probe() <= breaker.reset_after


def test_breaker_waits_twice_as_long_after_each_failed_probe():
    clock = Clock()
    breaker = Breaker(failures=1, reset_after=1.0, max_reset_after=4.0, clock=clock)
    breaker.failure()
    waits = []
    for _ in range(4):
        waits.append(breaker.seconds_until_probe())
        clock.now += waits[-1]
        assert breaker.allow()
        breaker.failure()
    assert waits == [1.0, 2.0, 4.0, 4.0]
    clock.now += 4.0
    assert breaker.allow()
    breaker.success()
    breaker.failure()
    assert breaker.seconds_until_probe() == 1.0


# -- metadata ----------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=80)


@given(
    filename=texts.filter(lambda name: "\x00" not in name),
    content_type=st.from_regex(r"[a-z]+/[a-z0-9.+-]+", fullmatch=True),
    data=st.binary(max_size=64),
    stored_at=st.floats(min_value=0, max_value=4e9),
    version=st.integers(min_value=1, max_value=2**63),
)
def test_metadata_round_trips(filename, content_type, data, stored_at, version):
    meta = ObjectMeta(
        "some/key",
        filename,
        content_type,
        len(data),
        hashlib.sha256(data).hexdigest(),
        stored_at,
        "0" * 32,
    )
    fields = encode(meta, version)
    assert all(value.isascii() and value.isprintable() for value in fields.values())
    stored = decode("some/key", fields, content_type, len(data), '"etag"')
    assert stored is not None
    assert stored.version == version
    assert stored.meta == ObjectMeta(
        "some/key",
        filename,
        content_type,
        len(data),
        meta.sha256,
        stored_at,
        "0" * 32,
        fetched_version=version,
    )


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "packrat-sha256",
                "packrat-xxh3",
                "packrat-version",
                "packrat-stored-at",
                "packrat-filename",
                "other",
            ]
        ),
        st.text(max_size=70) | st.sampled_from(["a" * 64, "0" * 32, "12", "nan", "-1", "%ff"]),
    ),
    st.none() | st.text(max_size=40),
    st.integers(min_value=-5, max_value=10**12),
)
def test_any_metadata_decodes_or_is_refused_without_raising(metadata, content_type, size):
    stored = decode("k", metadata, content_type, size, "")
    if stored is not None:
        assert len(stored.meta.sha256) == 64
        assert stored.meta.size == size >= 0
        assert stored.meta.fetched_version >= 1
        assert stored.meta.content_type.isprintable()


# -- the backlog and its mark -------------------------------------------------------

NAMES = [f"{n:064x}" for n in range(6)]


class BacklogMachine(RuleBasedStateMachine):
    """Commits, uploads (finished, failed), evictions: the mark never passes an object
    that is committed locally and not settled, and the memory bound holds."""

    def __init__(self) -> None:
        super().__init__()
        self.backlog = Backlog(max_objects=4)
        self.clock = 10 * LAG_NS
        self.unsettled: dict[str, set[int]] = {}  # name -> commits not uploaded nor gone
        self.taken: list[tuple[str, int]] = []

    @rule(name=st.sampled_from(NAMES))
    def commit(self, name):
        """A new version replaces the file: only it remains to be uploaded."""
        self.clock += 1_000_000
        if not self.backlog.add(name, self.clock, 100):  # no room: left on the disk
            assert self.backlog.untracked_from is not None
            assert self.backlog.untracked_from <= self.clock
        self.unsettled[name] = {self.clock}

    @rule()
    def take(self):
        taken = self.backlog.take()
        if taken is not None:
            self.taken.append(taken)

    @precondition(lambda self: self.taken)
    @rule(index=st.integers(min_value=0, max_value=10), retry=st.booleans())
    def finish(self, index, retry):
        name, stamp = self.taken.pop(index % len(self.taken))
        self.backlog.finished(name, stamp, retry=retry)
        if not retry:
            self.unsettled[name].discard(stamp)

    @rule(name=st.sampled_from(NAMES))
    def evict(self, name):
        """The file is gone: nothing of it is left to upload (counted as lost)."""
        self.backlog.drop(name)
        self.unsettled[name] = set()

    @rule()
    def tick(self):
        self.clock += LAG_NS // 2

    @invariant()
    def mark_never_passes_an_unsettled_commit(self):
        mark = self.backlog.mark(self.clock)
        assert mark <= self.clock - LAG_NS
        for name, stamps in self.unsettled.items():
            for stamp in stamps:
                assert mark < stamp, (name, stamp, mark)

    @invariant()
    def memory_is_bounded(self):
        assert len(self.backlog) <= 4


BacklogMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
test_backlog = BacklogMachine.TestCase


# -- settings ------------------------------------------------------------------------


def test_objectstore_settings_are_checked_with_clear_errors(tmp_path):
    import pytest

    from packrat.core.settings import ConfigError, load

    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIAEXAMPLEKEY1\n")
    cases = {
        "bucket = B": "is not a bucket name",
        "bucket = ok-name\nendpoint_url = ftp://x": "is not an http:// or https:// URL",
        "bucket = ok-name\nuploader_endpoint = tcp://0.0.0.0:5": "takes no CURVE keys",
        "bucket = ok-name\nconcurrency = 0": "must be at least 1",
        f"bucket = ok-name\ncredentials_file = {credentials}": "lacks aws_secret_access_key",
        f"bucket = ok-name\ncredentials_file = {credentials}\nprofile = ci": "has no [ci] section",
        "bucket = a.b.c\naddressing_style = virtual": "use addressing_style = path",
    }
    for body, problem in cases.items():
        path = tmp_path / "p.ini"
        path.write_text(f"[objectstore]\n{body}\n")
        with pytest.raises(ConfigError, match=re.escape(problem)):
            load(path)
    path.write_text("[objectstore]\nbucket = ok-name\n")
    settings = load(path)
    assert settings.objectstore_enabled and settings.objectstore_prefix == ""
    assert not load(None).objectstore_enabled


# -- the uploader's requests ----------------------------------------------------

_FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(messages.OPS),
)


@given(st.dictionaries(st.sampled_from(["op", "key", "prefix", "limit", "x"]), _FIELD_VALUES))
def test_the_uploaders_requests_are_checked_field_by_field(fields):
    """A request the uploader would act on has the fields its op needs, of their type."""
    if messages.check_request(fields) is None:
        assert fields["op"] in messages.OPS
        if fields["op"] == "delete":
            assert isinstance(fields["key"], str)
        if fields["op"] == "list":
            assert isinstance(fields["prefix"], str)
            assert type(fields["limit"]) is int and 1 <= fields["limit"] <= messages.MAX_LIST


def test_a_list_request_names_its_prefix_and_a_bounded_limit():
    good = {"op": "list", "prefix": "ci/", "limit": 1000}
    assert messages.check_request(good) is None
    too_many = messages.check_request({**good, "limit": 1001})
    assert too_many == "limit must be a whole number from 1 to 1000"
    assert messages.check_request({**good, "limit": True}) is not None
    assert messages.check_request({**good, "prefix": None}) == "prefix must be a string"
