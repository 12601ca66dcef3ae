"""The log lines: ``log_event``'s straight path writes exactly what logging would.

An access line per request goes straight to the handler ``configure``
installed (``log_event``) when logging would do nothing else with it; these
tests log the same events both ways, in both formats, and compare the lines
the handler wrote, and check that any other handler or a filter sends events
the usual way.
"""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packrat.core import logs
from packrat.core.settings import Settings
from packrat.frontend.accesslog import AccessEntry, quoted


@pytest.fixture
def configured():
    """``logs.configure``, its handler writing to a ``StringIO``; logging restored after."""
    root = logging.getLogger()
    access = logging.getLogger(logs.ACCESS_LOGGER)
    saved = (root.handlers[:], root.level, access.level)

    def configure(form: str) -> io.StringIO:
        logs.configure("frontend 0", Settings(log_format=form), buffered=True)
        out = io.StringIO()
        root.handlers[0].stream = out
        return out

    yield configure
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    access.setLevel(saved[2])


entries = st.builds(
    AccessEntry,
    remote=st.sampled_from(["127.0.0.1", "::1"]),
    method=st.sampled_from(["GET", "PUT", "BR EW"]),
    path=st.text(max_size=20),
    status=st.sampled_from([200, 404, 503]),
    sent=st.integers(0, 10**9),
    received=st.integers(0, 10**9),
    duration=st.floats(0, 100, allow_nan=False),
    user_agent=st.text(max_size=20),
    number=st.integers(0, 8),
    error=st.sampled_from([None, "too_busy"]),
    detail=st.sampled_from([None, "why"]),
)


@pytest.mark.parametrize("form", ["text", "json"])
@given(entry=entries, level=st.sampled_from([logging.INFO, logging.WARNING]))
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_straight_path_writes_what_logging_writes(configured, form, entry, level):
    out = configured(form)
    access = logging.getLogger(logs.ACCESS_LOGGER)
    logs.log_event(access, level, entry)
    access.log(level, entry)
    straight, usual = out.getvalue().splitlines()
    # The same line but for the clock, which moved between the two calls.
    cut = 23 if form == "text" else straight.index('"level"')
    assert straight[cut:] == usual[cut:]
    assert straight[:cut].count(":") == usual[:cut].count(":")


@given(st.lists(st.floats(min_value=0, max_value=4e9), min_size=1, max_size=20))
def test_the_text_time_is_loggings_made_once_a_millisecond(moments):
    """``TextFormatter`` remembers its time text for a millisecond; in any order of
    moments it writes what ``logging.Formatter`` writes (to the millisecond: the
    product ``created * 1000`` may round up where logging's subtraction does not)."""
    ours, theirs = logs.TextFormatter("frontend 0"), logging.Formatter()
    for created in moments:
        record = logging.makeLogRecord({"created": created, "msecs": _msecs(created)})
        mine, reference = ours.formatTime(record), theirs.formatTime(record)
        assert abs(_parse(mine) - _parse(reference)) <= 0.001, (created, mine, reference)


def _msecs(created: float) -> float:
    return int((created - int(created)) * 1000) + 0.0  # as logging.LogRecord does


def _parse(text: str) -> float:
    """Seconds of a ``YYYY-MM-DD HH:MM:SS,mmm`` time in the local zone."""
    stamp, _, millis = text.partition(",")
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000


def test_other_handlers_and_filters_get_events_the_usual_way(configured):
    out = configured("text")
    access = logging.getLogger(logs.ACCESS_LOGGER)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    entry = AccessEntry("::1", "GET", "/k", 200, 1, 0, 0.001, "curl", 0)
    keep = Keep()
    access.addHandler(keep)
    try:
        logs.log_event(access, logging.INFO, entry)
    finally:
        access.removeHandler(keep)
    assert [r.msg for r in seen] == [entry]
    assert out.getvalue().count("\n") == 1  # and the usual way up to the root's handler
    out.seek(0)
    out.truncate()
    dropped = logging.Filter("nothing")
    logging.getLogger().handlers[0].addFilter(dropped)
    logs.log_event(access, logging.INFO, entry)
    assert out.getvalue() == ""  # the filter had its say (the handler logged nothing)


@given(st.text())
def test_quoted_is_what_json_writes(text):
    """The access line's quoting of client-chosen text is ``json.dumps``'s, exactly."""
    assert quoted(text) == json.dumps(text)


def test_queued_lines_keep_their_order_and_reach_the_stream_on_a_flush(configured):
    """Buffered, a straight line waits in the handler's queue; a flush, a later line of
    any kind, or ``PENDING_LINES`` of them write it, always before what came after."""
    out = configured("text")
    handler = logging.getLogger().handlers[0]
    handler.buffered = True  # as for a front end whose stderr is a file
    access = logging.getLogger(logs.ACCESS_LOGGER)
    entry = AccessEntry("::1", "GET", "/first", 200, 1, 0, 0.001, "curl", 0)
    logs.log_event(access, logging.INFO, entry)
    assert out.getvalue() == ""
    logs.flush_logs()
    assert out.getvalue().endswith('GET "/first" 200 sent=1 received=0 1.0ms "curl"\n')
    out.seek(0)
    out.truncate()
    for path in ("/a", "/b"):
        logs.log_event(access, logging.INFO, AccessEntry("::1", "GET", path, 200, 1, 0, 0, "", 0))
    logging.getLogger("packrat.frontend").warning("after them")
    lines = out.getvalue().splitlines()
    assert ['"/a"' in lines[0], '"/b"' in lines[1], lines[2].endswith("after them")] == [True] * 3
    out.seek(0)
    out.truncate()
    for n in range(logs.PENDING_LINES):
        logs.log_event(
            access, logging.INFO, AccessEntry("::1", "GET", f"/{n}", 200, 1, 0, 0, "", 0)
        )
    assert out.getvalue().count("\n") == logs.PENDING_LINES
