"""Endpoints for operators: liveness, readiness, Prometheus metrics, the figures as JSON.

``GET /healthz``    liveness: this front end's event loop answers (no
                    coordinator round trip); public, like the OpenAPI document
``GET /readyz``     readiness: the coordinator answered a ``Stats`` request
                    within ``PROBE_TIMEOUT`` (it binds its socket only once
                    its index is loaded); else 503 ``coordinator_unavailable``;
                    public
``GET /metrics``    Prometheus text of every front end plus the coordinator;
                    needs the read right when ``[auth]`` is on, unless
                    ``[metrics] public = true``
``GET /api/stats``  the status page's figures; needs the read right

Probes and scrapes carry no credentials in most set-ups, and liveness and
readiness say nothing about the cache's contents, so they stay public.
Metrics name routes and counts, so they are protected like the status page;
``/api/stats`` names the latest keys only to a caller with the ``list`` right.
"""

from __future__ import annotations

from typing import Any

from packrat import __version__
from packrat.core.errors import PackratError
from packrat.frontend.auth import LIST
from packrat.frontend.base import BaseHandler
from packrat.frontend.metrics import exposition

PROBE_TIMEOUT = 2.0  # seconds a readiness probe or a scrape waits for the coordinator
UPLOADER_PROBE_TIMEOUT = 0.5  # ... and for the object store's uploader (it only informs)
# Prometheus' text format 0.0.4, which every Prometheus reads (our names need
# none of version 1.0.0's escaping).
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def probe_timeout(handler: BaseHandler) -> float:
    return min(PROBE_TIMEOUT, handler.frontend.settings.coordinator_timeout)


class HealthHandler(BaseHandler):
    """``GET /healthz``: 200 while this process serves HTTP."""

    route = "/healthz"

    async def prepare(self) -> None:
        pass  # public

    def get(self) -> None:
        self.write_json({"live": True, "frontend": self.frontend.number})

    head = get  # probes that ask with HEAD (Tornado sends the headers only)


class ReadyHandler(BaseHandler):
    """``GET /readyz``: 200 when the coordinator answers, 503 otherwise."""

    route = "/readyz"

    async def prepare(self) -> None:
        pass  # public

    async def get(self) -> None:
        await self.frontend.coordinator.stats(timeout=probe_timeout(self))
        answer: dict[str, object] = {"ready": True, "frontend": self.frontend.number}
        if self.frontend.readthrough is not None:
            from packrat.objectstore.status import objectstore_status

            # Still ready when the store is not: local reads and writes go on, and a
            # balancer that took every node out of its pool would stop them too.
            status = await objectstore_status(self.frontend, UPLOADER_PROBE_TIMEOUT)
            answer["objectstore"] = status["state"]
        self.write_json(answer)

    head = get


class MetricsHandler(BaseHandler):
    """``GET /metrics``: Prometheus text format; the coordinator's part when it answers."""

    route = "/metrics"

    async def prepare(self) -> None:
        if not self.frontend.settings.metrics_public:
            await self.authorize()

    async def get(self) -> None:
        try:
            stats = await self.frontend.coordinator.stats(timeout=probe_timeout(self))
        except PackratError:
            stats = None  # packrat_coordinator_up says so
        self.set_header("Content-Type", METRICS_TYPE)
        self.finish(exposition(self.frontend.metrics, stats))


class StatsHandler(BaseHandler):
    """``GET /api/stats``: the coordinator's figures and activity, as JSON.

    ``recent_uploads`` names keys: null unless the caller may list them.
    """

    route = "/api/stats"

    async def get(self) -> None:
        self.write_json({"version": __version__, **await current_stats(self)})


async def current_stats(handler: BaseHandler) -> dict[str, Any]:
    """The figures ``/api/stats`` answers and the status page shows, with the object
    store's state under ``[objectstore]``; ``recent_uploads`` names keys, so it is null
    unless the caller may list them."""
    stats = await handler.frontend.coordinator.stats()
    if handler.frontend.readthrough is not None:
        from packrat.objectstore.status import objectstore_status

        stats["objectstore"] = await objectstore_status(handler.frontend, probe_timeout(handler))
    authorization = handler.request.headers.get("Authorization")
    if not await handler.frontend.auth.allows(LIST, authorization):
        stats["recent_uploads"] = None
    return stats
