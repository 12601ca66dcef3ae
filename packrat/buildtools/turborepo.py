"""Turborepo's remote cache API (``/v8/artifacts``): its keys, headers, events and errors.

turbo (2.x) sends, with ``Authorization: Bearer <token>`` and its team as
``?teamId=team_...`` and/or ``?slug=<team>`` (``--team``, ``TURBO_TEAM``):

``GET /v8/artifacts/status``         is remote caching on: ``{"status": "enabled"}``
``GET|HEAD|PUT /v8/artifacts/<hash>``  an artifact (a tar.gz of a task's outputs);
                                     ``PUT`` sends ``x-artifact-duration`` (ms the task
                                     took: the time a hit saves) and, with signing on,
                                     ``x-artifact-tag``; both come back on ``GET``/``HEAD``
``POST /v8/artifacts``               ``{"hashes": [...]}``: each one's size, duration and
                                     tag, or null (``turbo run --dry``)
``POST /v8/artifacts/events``        ``[{"sessionId", "source": "LOCAL"|"REMOTE",
                                     "event": "HIT"|"MISS", "hash", "duration"}]``: usage

An artifact is stored under ``v8/artifacts/<team>/<hash>``, ``<team>`` being
the ``teamId`` when sent, else the ``slug``, or under ``v8/artifacts/<hash>``
for a client that names no team: teams sharing a server do not share
artifacts, and the key is the URL's own path once the team is put in it (so
``GET /v8/artifacts/<team>/<hash>`` reads it as any other key).  A team is a
namespace, not a right: every credential that may read, reads every team.

Errors are answered as turbo's client reads them (``{"error": {"code",
"message"}}``: it shows the message of a 403) with the self-hosted
specification's ``code`` and ``message`` beside.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from packrat.store.format import header_problem

PREFIX = "v8/artifacts"
# Headers turbo sends with an artifact that go back with it (the specification's).
STORED = ("x-artifact-duration", "x-artifact-tag", "x-artifact-sha", "x-artifact-dirty-hash")
MAX_TAG = 600  # characters of x-artifact-tag (the specification's maxLength)
MAX_EVENTS = 10_000  # events in one POST /v8/artifacts/events
MAX_HASHES = 10_000  # hashes in one POST /v8/artifacts
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")  # a hash, a team id or slug
_DIGITS = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True, slots=True)
class Event:
    source: str  # LOCAL or REMOTE
    event: str  # HIT or MISS
    duration: int  # ms the task took (what a hit saved); 0 when not sent


def artifact_key(hash_: str, team_id: str | None, slug: str | None) -> str:
    """The key of an artifact: ``v8/artifacts/[<team>/]<hash>``; ``ValueError`` naming
    what is wrong for a hash or team that is not one path segment of letters, digits
    and ``._-``.

    >>> artifact_key("0123abcd", "team_x", "mine"), artifact_key("0123abcd", None, "mine")
    ('v8/artifacts/team_x/0123abcd', 'v8/artifacts/mine/0123abcd')
    >>> artifact_key("0123abcd", "", None)
    'v8/artifacts/0123abcd'
    """
    if not _NAME.fullmatch(hash_):
        raise ValueError(f"{hash_[:140]!r} is not an artifact hash")
    team = team_id or slug
    if not team:
        return f"{PREFIX}/{hash_}"
    if not _NAME.fullmatch(team):
        raise ValueError(f"{team[:140]!r} is not a team id or slug (letters, digits, ._-)")
    return f"{PREFIX}/{team}/{hash_}"


def stored_headers(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The headers of an artifact's ``PUT`` (by lower-case name) kept with it;
    ``ValueError`` for one that is malformed.

    >>> stored_headers({"x-artifact-duration": "1150", "authorization": "Bearer t"})
    (('x-artifact-duration', '1150'),)
    >>> stored_headers({"x-artifact-duration": "-1"})
    Traceback (most recent call last):
    ValueError: x-artifact-duration must be a whole number of milliseconds, not '-1'
    """
    kept = []
    for name in STORED:
        value = headers.get(name)
        if value is None:
            continue
        value = value.strip()
        if name == "x-artifact-duration" and not _DIGITS.fullmatch(value):
            raise ValueError(f"{name} must be a whole number of milliseconds, not {value[:40]!r}")
        if name == "x-artifact-tag" and len(value) > MAX_TAG:
            raise ValueError(f"{name} has more than {MAX_TAG} characters")
        problem = header_problem(name, value)
        if problem is not None:
            raise ValueError(problem)
        kept.append((name, value))
    return tuple(kept)


def parse_events(body: bytes) -> list[Event]:
    """The events of a ``POST /v8/artifacts/events`` body; ``ValueError`` naming the
    first thing wrong.

    >>> parse_events(b'[{"sessionId": "s", "source": "REMOTE", "event": "HIT", '
    ...              b'"hash": "ab12", "duration": 1150}]')
    [Event(source='REMOTE', event='HIT', duration=1150)]
    """
    events = _json(body)
    if not isinstance(events, list):
        raise ValueError("the body must be a JSON array of events")
    if len(events) > MAX_EVENTS:
        raise ValueError(f"at most {MAX_EVENTS} events at once")
    parsed = []
    for n, event in enumerate(events):
        if not isinstance(event, dict):
            raise ValueError(f"event {n} is not an object")
        source, kind, hash_ = event.get("source"), event.get("event"), event.get("hash")
        duration = event.get("duration", 0)
        session = event.get("sessionId", "")
        if source not in ("LOCAL", "REMOTE"):
            raise ValueError(f"event {n}: source must be LOCAL or REMOTE")
        if kind not in ("HIT", "MISS"):
            raise ValueError(f"event {n}: event must be HIT or MISS")
        if not isinstance(hash_, str) or not _NAME.fullmatch(hash_):
            raise ValueError(f"event {n}: hash must be an artifact hash")
        if not isinstance(session, str) or len(session) > 128:
            raise ValueError(f"event {n}: sessionId must be a string")
        if type(duration) not in (int, float) or not 0 <= duration < 1e15:
            raise ValueError(f"event {n}: duration must be a number of milliseconds")
        parsed.append(Event(source, kind, int(duration)))
    return parsed


def parse_query(body: bytes) -> list[str]:
    """The hashes of a ``POST /v8/artifacts`` body (``{"hashes": [...]}``), each once;
    ``ValueError`` naming what is wrong.

    >>> parse_query(b'{"hashes": ["ab", "cd", "ab"]}')
    ['ab', 'cd']
    """
    query = _json(body)
    hashes = query.get("hashes") if isinstance(query, dict) else None
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
        raise ValueError('the body must be {"hashes": [...]}, a list of artifact hashes')
    if len(hashes) > MAX_HASHES:
        raise ValueError(f"at most {MAX_HASHES} hashes at once")
    return list(dict.fromkeys(hashes))


def artifact_info(size: int, headers: tuple[tuple[str, str], ...]) -> dict[str, object]:
    """What ``POST /v8/artifacts`` answers for an artifact of ``size`` bytes stored with
    ``headers``.

    >>> artifact_info(246, (("x-artifact-duration", "1150"), ("x-artifact-tag", "t")))
    {'size': 246, 'taskDurationMs': 1150, 'tag': 't'}
    """
    stored = dict(headers)
    info: dict[str, object] = {
        "size": size,
        "taskDurationMs": int(stored.get("x-artifact-duration", "0")),
    }
    for name, field in (("x-artifact-tag", "tag"), ("x-artifact-sha", "sha")):
        if name in stored:
            info[field] = stored[name]
    if "x-artifact-dirty-hash" in stored:
        info["dirtyHash"] = stored["x-artifact-dirty-hash"]
    return info


def error_body(code: str, message: str) -> bytes:
    """An error as turbo's client reads it, with the specification's fields beside.

    >>> error_body("forbidden", "no")
    b'{"code": "forbidden", "message": "no", "error": {"code": "forbidden", "message": "no"}}\\n'
    """
    error = {"code": code, "message": message}
    return json.dumps({**error, "error": error}).encode() + b"\n"


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("the body is not JSON") from None
