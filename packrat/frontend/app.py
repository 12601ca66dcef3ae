"""One front-end process: the Tornado application on a shared port.

Every front end binds the same port with ``SO_REUSEPORT`` and the kernel
spreads connections across them.  Nothing touches the event loop before the
process is its own (no fork after the loop exists).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from pathlib import Path

from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets
from tornado.web import Application

from packrat.coordinator.connection import AsyncCoordinatorClient
from packrat.core import metrics_directory
from packrat.core.exits import CannotListen
from packrat.core.fdlimit import raise_open_file_limit
from packrat.core.logs import flush_logs
from packrat.core.settings import Settings
from packrat.frontend.accesslog import RequestLog
from packrat.frontend.auth import Authenticator
from packrat.frontend.base import BaseHandler
from packrat.frontend.dependencies import Dependencies
from packrat.frontend.handlers import (
    ExistsHandler,
    FaviconHandler,
    NotFoundHandler,
    ObjectHandler,
    OpenAPIHandler,
    StaticHandler,
    StatusHandler,
)
from packrat.frontend.hot import HotRoutes
from packrat.frontend.metrics import FrontendMetrics
from packrat.frontend.observability import (
    HealthHandler,
    MetricsHandler,
    ReadyHandler,
    StatsHandler,
)
from packrat.frontend.server import PackratHTTPServer
from packrat.frontend.upload_slots import UploadSlots
from packrat.frontend.webdav import CollectionHandler
from packrat.store import Layout

log = logging.getLogger("packrat.frontend")

HERE = Path(__file__).parent
SHUTDOWN_GRACE = 5.0  # seconds in-flight requests get after SIGTERM
SMALL_BODY = 64 * 1024  # the most any request that is not an upload may carry
LOG_FLUSH_MS = 1000  # buffered access lines reach the log at least this often


def make_dependencies(
    settings: Settings, coordinator: AsyncCoordinatorClient, number: int = 0
) -> Dependencies:
    """The process's shared dependencies, with the cache directories open.

    Its metrics are shared with the other processes if ``serve`` set
    ``packrat.core.metrics_directory.use_directory`` first.
    """
    layout = Layout(settings.cache_root)
    layout.create()
    layout.open_dirs()
    counters = FrontendMetrics()
    coordinator.number = number
    coordinator.observe = counters.observe_round_trip
    return Dependencies(
        settings=settings,
        layout=layout,
        coordinator=coordinator,
        auth=Authenticator(settings),
        uploads=UploadSlots(
            settings.frontend_max_uploads,
            settings.frontend_idle_timeout,
            report=counters.uploads_in_flight.set,
        ),
        number=number,
        metrics=counters,
    )


def make_app(frontend: Dependencies) -> Application:
    deps = {"frontend": frontend}
    # Keep in step with packrat.core.keys.RESERVED_PREFIXES and openapi.json.
    return Application(
        [
            (r"/", StatusHandler, deps),
            (
                r"/static/(packrat\.css|packrat\.js|favicon\.svg)",
                StaticHandler,
                {"path": str(HERE / "static")},
            ),
            (r"/favicon\.ico", FaviconHandler, deps),
            (r"/api/openapi\.json", OpenAPIHandler, deps),
            (r"/api/stats", StatsHandler, deps),
            (r"/healthz", HealthHandler, deps),
            (r"/readyz", ReadyHandler, deps),
            (r"/metrics", MetricsHandler, deps),
            (r"/exists/(.+)", ExistsHandler, deps),
            (r"/(.+/)", CollectionHandler, deps),
            (r"/(.+)", ObjectHandler, deps),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=deps,
        log_function=RequestLog(frontend),
        frontend=frontend,
        template_path=str(HERE / "templates"),
        xsrf_cookies=False,
        compress_response=False,  # byte ranges and Content-Length are of the stored bytes
    )


def make_server(app: Application, settings: Settings) -> PackratHTTPServer:
    """The HTTP(S) server with the slow-client limits of ``[frontend]``.

    ``idle_connection_timeout`` bounds both the wait for a request's headers
    (a slowloris sending them byte by byte is cut off) and an idle
    keep-alive connection; ``body_timeout`` bounds the whole body, and an
    upload whose body stalls for ``idle_timeout`` is cut (``UploadSlots``).
    """
    server = PackratHTTPServer(
        app,
        ssl_options=settings.ssl_context(),
        max_body_size=SMALL_BODY,  # uploads raise it per request
        max_header_size=settings.frontend_max_header_size,
        idle_connection_timeout=settings.frontend_idle_timeout,
        body_timeout=settings.frontend_body_timeout,
    )
    frontend = app.settings.get("frontend")
    if frontend is not None:
        server.hot = HotRoutes(frontend, app.settings["log_function"])
    server.watch_headers(settings.frontend_idle_timeout)
    return server


def listen(settings: Settings, reuse_port: bool = True) -> list[socket.socket]:
    """Bind the HTTP address; ``CannotListen`` with one clear sentence when it cannot be."""
    address = f"{settings.server_host}:{settings.server_port}"
    try:
        return bind_sockets(settings.server_port, settings.server_host, reuse_port=reuse_port)
    except socket.gaierror as e:
        raise CannotListen(f"cannot listen on {address}: the host does not resolve ({e})") from None
    except OSError as e:
        raise CannotListen(f"cannot listen on {address}: {e.strerror}") from None


async def serve(settings: Settings, number: int = 0) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting and finish."""
    raise_open_file_limit()
    sockets = listen(settings)
    metrics_directory.use_directory(settings.metrics_directory)
    coordinator = AsyncCoordinatorClient(
        settings.coordinator_endpoint,
        settings.coordinator_timeout,
        settings.frontend_touch_interval,
        settings.coordinator_curve_keys,
    )
    coordinator.start()
    frontend = make_dependencies(settings, coordinator, number)
    server = make_server(make_app(frontend), settings)
    server.add_sockets(sockets)
    log_flusher = PeriodicCallback(flush_logs, LOG_FLUSH_MS)
    log_flusher.start()
    scheme = "https" if settings.server_certfile else "http"
    log.info(
        "front end listening on %s://%s:%d", scheme, settings.server_host, settings.server_port
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()  # no new connections; requests under way may finish
    deadline = loop.time() + SHUTDOWN_GRACE
    while BaseHandler.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if BaseHandler.in_flight:
        log.warning("closing with %d requests still in flight", BaseHandler.in_flight)
    try:
        await asyncio.wait_for(server.close_all_connections(), timeout=1)
    except TimeoutError:
        log.warning("connections did not close in 1 s; exiting anyway")
    await coordinator.close()
    frontend.layout.close_dirs()
    log_flusher.stop()


def run(settings: Settings, number: int = 0) -> None:
    asyncio.run(serve(settings, number))
