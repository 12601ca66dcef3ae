"""Turborepo's remote cache API, served around the object path (``buildtools.turborepo``).

The router hands this every path under ``/v8/artifacts`` but those deeper
than ``/v8/artifacts/<one segment>`` (keys as any other):

* ``GET|HEAD|PUT|DELETE /v8/artifacts/<hash>``: the object path
  (``ObjectPath.delegate``) for the team's key, the ``x-artifact-*`` headers
  of a ``PUT`` kept with the object (``ObjectMeta.headers``) and sent back
  by every read; reads and writes, hits and misses, are the object path's.
* ``GET /v8/artifacts/status``: ``{"status": "enabled"}`` (the read right).
* ``POST /v8/artifacts/events``: the events checked and counted in the
  metrics (``packrat_turbo_events_total``, ``packrat_turbo_saved_seconds_total``),
  not stored (the read right: a read-only token's turbo sends them too).
* ``POST /v8/artifacts``: each hash's size, duration and tag from the
  object's trailer, or from the object store's metadata, without reading the
  object (the read right).

Every error of these routes is answered in the shape turbo reads
(``buildtools.turborepo.error_body``).  The JSON bodies of ``events`` and
the query may have ``MAX_JSON`` bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote

from tornado.escape import parse_qs_bytes

from packrat.buildtools import turborepo
from packrat.core.errors import BadRequest, PackratError
from packrat.frontend import envelope
from packrat.frontend.auth import READ
from packrat.frontend.http1 import Delegate, Exchange
from packrat.frontend.listing import read_meta
from packrat.frontend.objects import MethodNotAllowed, ObjectPath
from packrat.store import ObjectMeta

if TYPE_CHECKING:
    from packrat.frontend.dependencies import Dependencies

PATH = "/" + turborepo.PREFIX  # /v8/artifacts
ARTIFACT_ROUTE = PATH + "/{hash}"  # route names in metrics
STATUS_ROUTE = PATH + "/status"
EVENTS_ROUTE = PATH + "/events"
QUERY_ROUTE = PATH
ARTIFACT_METHODS = ("DELETE", "GET", "HEAD", "PUT")
MAX_JSON = 1 << 20  # bytes of an events or query body
STATUS = {"status": "enabled"}
Parsed = TypeVar("Parsed")


def error_answer(error: PackratError) -> tuple[int, list[tuple[str, str]], bytes]:
    """``envelope.error_answer`` in turbo's shape: the same status and headers."""
    body = turborepo.error_body(str(error.code), error.message)
    fields = envelope.common_fields(json_body=True) + envelope.error_fields(error)
    fields.append(("Content-Length", str(len(body))))
    return error.status, fields, body


class Turborepo:
    """Routes ``/v8/artifacts`` requests (see the module's doc)."""

    def __init__(self, objects: ObjectPath) -> None:
        self.objects = objects
        self.frontend = objects.frontend

    def route(self, exchange: Exchange) -> Delegate | None:
        """The delegate for ``exchange``, or None for a path that is a key as any other."""
        request = exchange.request
        path, method = request.path, request.method
        if path == PATH:
            tail = None
        elif path[len(PATH)] == "/" and "/" not in path[len(PATH) + 1 :]:
            tail = path[len(PATH) + 1 :]
        else:
            return None  # /v8/artifactsX, /v8/artifacts/team/hash: keys as any other
        exchange.error_answer = error_answer
        if tail is None:
            return JSONRequest(self, exchange, QUERY_ROUTE, ("POST",))
        if tail == "status":
            return JSONRequest(self, exchange, STATUS_ROUTE, ("GET", "HEAD"))
        if tail == "events":
            return JSONRequest(self, exchange, EVENTS_ROUTE, ("POST",))
        exchange.route = ARTIFACT_ROUTE
        if method not in ARTIFACT_METHODS:
            raise MethodNotAllowed(method, ARTIFACT_METHODS)
        try:
            key = self.key(request.query, unquote(tail, errors="strict"))
            stored = turborepo.stored_headers(request.headers) if method == "PUT" else ()
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest(str(e)) from None
        return self.objects.delegate(exchange, key, stored=stored, route=ARTIFACT_ROUTE)

    def key(self, query: str, hash_: str) -> str:
        """The artifact's key for the team the query names (``ValueError`` if malformed:
        a team is taken as sent, never cleaned into another one)."""
        if not query:
            return turborepo.artifact_key(hash_, None, None)
        arguments = parse_qs_bytes(query, keep_blank_values=True)
        team_id, slug = (arguments.get(name, [b""])[-1].decode() for name in ("teamId", "slug"))
        return turborepo.artifact_key(hash_, team_id, slug)

    async def query(self, hashes: list[str], query: str) -> dict[str, object]:
        """What ``POST /v8/artifacts`` answers for ``hashes`` of the team ``query`` names."""
        answer: dict[str, object] = {}
        keys: dict[str, str] = {}
        for hash_ in hashes:
            try:
                keys[hash_] = self.key(query, hash_)
            except ValueError as e:
                answer[hash_] = {"error": {"message": str(e)}}
        found: dict[str, ObjectMeta | None] = {
            h: read_meta(self.frontend, key) for h, key in keys.items()
        }
        tier = self.objects.second_tier
        elsewhere = [h for h, meta in found.items() if meta is None]
        if tier is not None and elsewhere:
            metas = await asyncio.gather(*(tier.head(keys[h]) for h in elsewhere))
            found.update(zip(elsewhere, metas, strict=True))
        for hash_, meta in found.items():
            answer[hash_] = meta and turborepo.artifact_info(meta.size, meta.headers)
        return answer


class JSONRequest(Delegate):
    """``status``, ``events`` or the query: the read right, a small JSON body, a JSON answer."""

    def __init__(
        self, turbo: Turborepo, exchange: Exchange, route: str, methods: tuple[str, ...]
    ) -> None:
        exchange.route = route
        if exchange.request.method not in methods:
            raise MethodNotAllowed(exchange.request.method, methods)
        self.turbo = turbo
        self.frontend: Dependencies = turbo.frontend
        self.exchange = exchange
        self.body = bytearray()

    def headers_received(self) -> Awaitable[None] | None:
        request = self.exchange.request
        self.turbo.objects.cross_site(self.exchange)
        waiting = self.frontend.auth.check(READ, request.headers.get("authorization"))
        if request.body_expected:
            self.exchange.set_max_body_size(MAX_JSON)
        return waiting

    def data_received(self, chunk: bytes) -> None:
        self.body += chunk

    def finish(self) -> Awaitable[None] | None:
        route = self.exchange.route
        if route == STATUS_ROUTE:
            self._json(STATUS)
            return None
        if route == EVENTS_ROUTE:
            self._record(self._parse(turborepo.parse_events))
            return None
        return self._query(self._parse(turborepo.parse_query))

    def _parse(self, parse: Callable[[bytes], Parsed]) -> Parsed:
        try:
            return parse(bytes(self.body))
        except ValueError as e:
            raise BadRequest(str(e)) from None

    def _record(self, events: list[turborepo.Event]) -> None:
        metrics = self.frontend.metrics
        for event in events:
            metrics.turbo_events.labels(event.source, event.event).inc()
            if event.event == "HIT" and event.duration:
                metrics.turbo_saved.labels(event.source).inc(event.duration / 1000)
        self._json({"recorded": len(events)})

    async def _query(self, hashes: list[str]) -> None:
        self._json(await self.turbo.query(hashes, self.exchange.request.query))

    def _json(self, payload: dict[str, object]) -> None:
        self.exchange.respond(200, *envelope.json_answer(payload))
