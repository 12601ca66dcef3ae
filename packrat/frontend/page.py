"""What the status page shows, in words people read: sizes, ratios, durations, the charts.

The page is rendered here, on the server, so it is complete without
JavaScript; ``static/packrat.js`` refreshes it from ``GET /api/stats`` with
the same rules, written again in JavaScript (``tests/test_browser.py`` runs
both on the same inputs and compares them).  Rounding is spelled
``floor(x * 10 + 0.5)`` in both languages, so they agree on every tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tornado.web import StaticFileHandler

from packrat import __version__
from packrat.core import keys

STATIC_PATH = Path(__file__).parent / "static"

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

# The charts' drawing area: 60 one-minute columns of 10 units (viewBox).
COLUMN = 10
BAR = 8
RATIO_HEIGHT = 60
TRAFFIC_HEIGHT = 60  # sent above the middle line, received below it


def one_decimal(x: float) -> str:
    """``x`` to one decimal, without a trailing ``.0``.

    >>> one_decimal(1.25), one_decimal(2.0), one_decimal(99.96)
    ('1.3', '2', '100')
    """
    tenths = math.floor(x * 10 + 0.5)
    return str(tenths // 10) if tenths % 10 == 0 else f"{tenths // 10}.{tenths % 10}"


def human_bytes(n: float) -> str:
    """A byte count in binary units: one decimal under 100, none above.

    >>> human_bytes(0), human_bytes(1023), human_bytes(1536), human_bytes(1 << 30)
    ('0 B', '1023 B', '1.5 KiB', '1 GiB')
    >>> human_bytes(629147573), human_bytes(1023.96 * 1024)
    ('600 MiB', '1 MiB')
    """
    value = float(n)
    unit = 0
    while unit < len(UNITS) - 1 and (value >= 1024 or _rounds_up_to_next(value, unit)):
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(n)} B"
    if value >= 100:
        return f"{math.floor(value + 0.5)} {UNITS[unit]}"
    return f"{one_decimal(value)} {UNITS[unit]}"


def _rounds_up_to_next(value: float, unit: int) -> bool:
    """1023.96 KiB would print as "1024 KiB": call it 1 MiB instead."""
    return unit > 0 and math.floor(value + 0.5) >= 1024


def percent(fraction: float | None) -> str:
    """A ratio as a percentage to one decimal; ``None`` (nothing to divide) as a dash.

    >>> percent(0.875), percent(1), percent(None)
    ('87.5 %', '100 %', '—')
    """
    if fraction is None:
        return "—"
    return f"{one_decimal(fraction * 100)} %"


def count(n: int) -> str:
    """An integer with thousands separators.

    >>> count(1234567)
    '1,234,567'
    """
    return f"{n:,}"


def duration(seconds: float) -> str:
    """A duration in its two largest units: ``3 d 4 h``, ``2 h 5 min``, ``12 s``.

    >>> duration(3.069), duration(125), duration(7500), duration(3 * 86400 + 4 * 3600 + 59)
    ('3 s', '2 min 5 s', '2 h 5 min', '3 d 4 h')
    """
    s = max(0, math.floor(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (s, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{value} {unit}" for value, unit in parts[:2] if value or unit == "s")


def ago(seconds: float) -> str:
    """How long ago, roughly: ``just now``, ``42 s ago``, ``5 min ago``, ``2 h ago``, ``3 d ago``.

    >>> ago(0.4), ago(42), ago(301), ago(7300), ago(3 * 86400)
    ('just now', '42 s ago', '5 min ago', '2 h ago', '3 d ago')
    """
    s = math.floor(seconds)
    if s < 1:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{s} s ago"


def minutes_ago(index: int, buckets: int) -> str:
    """The label of a history bucket: ``this minute`` or ``N min ago``."""
    back = buckets - 1 - index
    return "this minute" if back == 0 else f"{back} min ago"


def sentence(message: str) -> str:
    """An API error's message as a sentence: a capital first, a full stop last.

    >>> sentence("the upload is larger than the limit of 1024 bytes")
    'The upload is larger than the limit of 1024 bytes.'
    """
    message = message.strip().rstrip(".")
    return message[:1].upper() + message[1:] + "."


def plural(n: int, word: str) -> str:
    """A count and its noun, in the plural unless the count is one.

    >>> plural(1, "hit"), plural(2, "miss"), plural(0, "upload")
    ('1 hit', '2 misses', '0 uploads')
    """
    if n == 1:
        return f"{count(n)} {word}"
    return f"{count(n)} {word}es" if word.endswith("s") else f"{count(n)} {word}s"


@dataclass(frozen=True)
class Bar:
    """One rectangle of a chart, in viewBox units; ``kind`` is its CSS class."""

    x: float
    y: float
    height: float
    kind: str
    title: str


def _round2(x: float) -> float:
    return math.floor(x * 100 + 0.5) / 100


def ratio_bars(buckets: list[dict[str, int]]) -> list[Bar]:
    """Per minute with reads: a full-height column, hits (from the bottom) then misses.

    The hits part's height is that minute's hit ratio; minutes without reads
    stay empty.
    """
    bars = []
    for i, bucket in enumerate(buckets):
        hits, misses = bucket["hits"], bucket["misses"]
        reads = hits + misses
        if reads == 0:
            continue
        x = i * COLUMN + (COLUMN - BAR) / 2
        hit_height = _round2(RATIO_HEIGHT * hits / reads)
        title = (
            f"{minutes_ago(i, len(buckets))}: {plural(hits, 'hit')}, "
            f"{plural(misses, 'miss')} ({percent(hits / reads)})"
        )
        if hits:
            bars.append(Bar(x, _round2(RATIO_HEIGHT - hit_height), hit_height, "hit", title))
        if misses:
            bars.append(Bar(x, 0, _round2(RATIO_HEIGHT - hit_height), "miss", title))
    return bars


def traffic_bars(buckets: list[dict[str, int]]) -> tuple[list[Bar], int]:
    """Per minute: bytes sent as a column up from the middle, received as one down.

    Both share one scale, the busiest minute's larger figure, which is returned too.
    """
    top = max((max(b["bytes_out"], b["bytes_in"]) for b in buckets), default=0)
    bars: list[Bar] = []
    if top == 0:
        return bars, 0
    half = TRAFFIC_HEIGHT / 2
    for i, bucket in enumerate(buckets):
        sent, received = bucket["bytes_out"], bucket["bytes_in"]
        if sent == 0 and received == 0:
            continue
        x = i * COLUMN + (COLUMN - BAR) / 2
        title = (
            f"{minutes_ago(i, len(buckets))}: {human_bytes(sent)} sent, "
            f"{human_bytes(received)} received"
        )
        if sent:
            height = max(_round2(half * sent / top), 0.5)  # a trickle stays visible
            bars.append(Bar(x, _round2(half - height), height, "sent", title))
        if received:
            height = max(_round2(half * received / top), 0.5)
            bars.append(Bar(x, half, height, "received", title))
    return bars, top


def view(stats: dict[str, Any]) -> dict[str, Any]:
    """The figures of ``GET /api/stats`` as the page shows them.

    Ages are counted from the coordinator's clock (``started_at`` plus
    ``uptime_seconds``), as the script does: a browser's clock may be off.
    """
    now = stats["started_at"] + stats["uptime_seconds"]
    buckets = stats["history"]["buckets"]
    hits = sum(b["hits"] for b in buckets)
    misses = sum(b["misses"] for b in buckets)
    traffic, traffic_top = traffic_bars(buckets)
    used = stats["bytes"] / stats["max_size"] if stats["max_size"] else 0.0
    return {
        "used": f"{human_bytes(stats['bytes'])} of {human_bytes(stats['max_size'])}",
        "used_percent": percent(used),
        "fill": min(used, 1.0),
        "hit_ratio": percent(stats["hit_ratio"]),
        "uptime": duration(stats["uptime_seconds"]),
        "evicted": human_bytes(stats["evicted_bytes"]),
        "hour_ratio": percent(hits / (hits + misses) if hits + misses else None),
        "hour_reads": plural(hits + misses, "read"),
        "hour_sent": human_bytes(sum(b["bytes_out"] for b in buckets)),
        "hour_received": human_bytes(sum(b["bytes_in"] for b in buckets)),
        "ratio_bars": ratio_bars(buckets),
        "traffic_bars": traffic,
        "traffic_top": f"{human_bytes(traffic_top)}/min",
        "uploads": None  # hidden: the viewer may not list key names
        if stats["recent_uploads"] is None
        else [
            {**u, "human_size": human_bytes(u["size"]), "ago": ago(now - u["stored_at"])}
            for u in stats["recent_uploads"]
        ],
        "objectstore": objectstore_figure(stats["objectstore"]) if "objectstore" in stats else None,
        "processes": [
            {
                **p,
                "name": "coordinator" if p["role"] == "coordinator" else f"front end {p['number']}",
                "state": p.get("state", "running"),
                "seen": (
                    f"up {duration(now - p['started_at'])}"
                    if p["role"] == "coordinator"
                    else f"heard from {ago(p['last_seen_seconds'])}"
                ),
            }
            for p in stats["processes"]
        ],
    }


def objectstore_figure(status: dict[str, Any]) -> dict[str, str]:
    """The object store's tile from ``stats["objectstore"]``: its state, and the backlog.

    >>> objectstore_figure({"state": "ok", "bucket": "b", "prefix": "", "uploader": None})
    {'state': 'ok', 'detail': 'b · the uploader does not answer'}
    """
    where = f"{status['bucket']}/{status['prefix']}" if status["prefix"] else status["bucket"]
    uploader = status["uploader"]
    if uploader is None:
        return {"state": status["state"], "detail": f"{where} · the uploader does not answer"}
    waiting = uploader["backlog_objects"]
    parts = [
        where,
        f"{count(waiting)} waiting ({human_bytes(uploader['backlog_bytes'])})"
        if waiting
        else "nothing waiting",
        f"{count(uploader['uploaded'])} uploaded",
    ]
    if uploader["lost_before_upload"]:
        parts.append(f"{count(uploader['lost_before_upload'])} evicted before upload")
    return {"state": status["state"], "detail": " · ".join(parts)}


def static_url(name: str) -> str:
    """``/static/<name>?v=<hash of its content>``: cached for long, and never stale."""
    version = StaticFileHandler.get_version({"static_path": str(STATIC_PATH)}, name)
    return f"/static/{name}?v={version[:16]}"


def status_args(stats: dict[str, Any] | None, max_file_size: int) -> dict[str, Any]:
    """What ``status.html`` is rendered with; ``stats`` None: the coordinator is away."""
    return {
        "stats": stats,
        "page": view(stats) if stats is not None else None,
        "version": __version__,
        "max_file_size": max_file_size,
        # The key rule from its home: browsers check it before sending (the
        # server checks again, with the reserved words and dot segments), and
        # the script makes default keys of file names with it.
        "key_pattern": keys.KEY_PATTERN,
        "key_rule": keys.KEY_RULE,
        "key_forbidden": keys.FORBIDDEN_CLASS,
        "key_max_bytes": keys.MAX_KEY_BYTES,
    }


def prefers_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header ranks ``text/html`` above ``application/json``.

    Browsers submitting a form send ``text/html,...,*/*;q=0.8``; API clients
    send ``application/json``, ``*/*`` or nothing, and get JSON (a tie
    goes to JSON, the API's own answer).

    >>> prefers_html("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    True
    >>> prefers_html("*/*"), prefers_html(None), prefers_html("application/json, text/html")
    (False, False, False)
    """
    if not accept:
        return False
    return _quality(accept, "text", "html") > _quality(accept, "application", "json")


def _quality(accept: str, kind: str, subtype: str) -> float:
    """The q of ``accept``'s most specific range matching ``kind/subtype`` (RFC 9110 12.5.1)."""
    best, best_q = -1, 0.0
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        a, _, b = media.lower().partition("/")
        if (a, b) == (kind, subtype):
            specificity = 2
        elif (a, b) == (kind, "*"):
            specificity = 1
        elif (a, b) == ("*", "*"):
            specificity = 0
        else:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # out of range, or nan
                    q = 0.0
        if specificity > best:
            best, best_q = specificity, q
    return best_q


# Functions the templates call.
HELPERS = {
    "count": count,
    "human_bytes": human_bytes,
    "key_path": keys.key_path,
    "plural": plural,
    "sentence": sentence,
    "static": static_url,
}
