"""One front-end process: the HTTP server on a shared port, objects and pages behind it.

Every front end binds the same port with ``SO_REUSEPORT`` and the kernel
spreads connections across them.  Nothing touches the event loop before the
process is its own (no fork after the loop exists).

Each request is read by ``http1`` and routed by ``Router``: ``/<key>`` and
``/exists/<key>`` to the object path (``objects``), everything else (the
status page, static files, the OpenAPI document, health, metrics, stats,
WebDAV collections) to Tornado's ``Application`` through ``pages``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
from pathlib import Path

from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets
from tornado.routing import Rule
from tornado.web import Application

from packrat.coordinator.connection import AsyncCoordinatorClient
from packrat.core import metrics_directory
from packrat.core.exits import CannotListen
from packrat.core.fdlimit import raise_open_file_limit
from packrat.core.logs import flush_logs
from packrat.core.settings import Settings
from packrat.frontend.accesslog import RequestLog
from packrat.frontend.auth import Authenticator
from packrat.frontend.buildcache import ActionResultCheck
from packrat.frontend.dependencies import Dependencies
from packrat.frontend.handlers import (
    FaviconHandler,
    NotFoundHandler,
    OpenAPIHandler,
    StaticHandler,
    StatusHandler,
)
from packrat.frontend.http1 import Delegate, Exchange, Limits
from packrat.frontend.listing import KeysHandler
from packrat.frontend.metrics import FrontendMetrics
from packrat.frontend.nx import MARK as NX_MARK
from packrat.frontend.nx import Nx
from packrat.frontend.objects import ObjectPath
from packrat.frontend.observability import (
    HealthHandler,
    MetricsHandler,
    ReadyHandler,
    StatsHandler,
)
from packrat.frontend.pages import TornadoDelegate
from packrat.frontend.server import Server
from packrat.frontend.turborepo import PATH as TURBO_PATH
from packrat.frontend.turborepo import Turborepo
from packrat.frontend.upload_slots import UploadSlots
from packrat.frontend.webdav import DAV_METHODS, DAVHandler, DAVMethods
from packrat.store import Layout, MetadataCache

log = logging.getLogger("packrat.frontend")

HERE = Path(__file__).parent
SHUTDOWN_GRACE = 5.0  # seconds in-flight requests get after SIGTERM
SMALL_BODY = 64 * 1024  # the most any request that is not an upload may carry
STATIC_FILES = ("packrat.css", "packrat.js", "favicon.svg")
# The exact paths the Application answers (keep in step with make_app, with
# packrat.keys.RESERVED_PREFIXES and with openapi.json); so do paths that
# end with "/" (WebDAV collections), WebDAV's own methods whatever the path,
# and targets that are not paths.
PAGES = frozenset(
    (
        "/",
        "/favicon.ico",
        "/api/openapi.json",
        "/api/stats",
        "/api/keys",
        "/healthz",
        "/readyz",
        "/metrics",
        *(f"/static/{name}" for name in STATIC_FILES),
    )
)
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
    frontend = Dependencies(
        settings=settings,
        layout=layout,
        coordinator=coordinator,
        auth=Authenticator(settings),
        uploads=UploadSlots(
            settings.frontend_max_uploads,
            settings.frontend_idle_timeout,
            report=counters.uploads,
        ),
        metadata=MetadataCache(layout, body_bytes=settings.frontend_memory_cache),
        number=number,
        metrics=counters,
    )
    if settings.objectstore_enabled:
        from packrat.objectstore.readthrough import ReadThrough
        from packrat.objectstore.uploader_client import UploaderClient

        async def commit_fetched(
            key: str, staging: str, file_size: int, size: int, filename: str
        ) -> bool:
            reply = await coordinator.commit(key, staging, file_size, size, filename, True)
            return not reply.present

        frontend.readthrough = ReadThrough(settings, layout, commit_fetched)
        frontend.uploader = UploaderClient(
            settings.objectstore_uploader_endpoint, settings.coordinator_timeout
        )
    return frontend


def make_app(frontend: Dependencies) -> Application:
    deps = {"frontend": frontend}
    # Keep in step with packrat.core.keys.RESERVED_PREFIXES and openapi.json.
    return Application(
        [
            # WebDAV's own methods, whatever the path (PROPFIND /key included).
            Rule(DAVMethods(r"/(.*)"), DAVHandler, deps),
            (r"/", StatusHandler, deps),
            (
                r"/static/(" + "|".join(map(re.escape, STATIC_FILES)) + ")",
                StaticHandler,
                {"path": str(HERE / "static")},
            ),
            (r"/favicon\.ico", FaviconHandler, deps),
            (r"/api/openapi\.json", OpenAPIHandler, deps),
            (r"/api/stats", StatsHandler, deps),
            (r"/api/keys", KeysHandler, deps),
            (r"/healthz", HealthHandler, deps),
            (r"/readyz", ReadyHandler, deps),
            (r"/metrics", MetricsHandler, deps),
            (r"/(.+/)", DAVHandler, deps),  # a collection: every method
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=deps,
        log_function=RequestLog(frontend),
        frontend=frontend,
        template_path=str(HERE / "templates"),
        xsrf_cookies=False,
        compress_response=False,  # byte ranges and Content-Length are of the stored bytes
    )


class Router:
    """Picks who answers a request: the object path (directly, or through a build
    tool's API around it), or the ``Application``."""

    def __init__(self, application: Application, objects: ObjectPath) -> None:
        self.application = application
        self.objects = objects
        self.turborepo = Turborepo(objects)
        self.nx = Nx(objects)

    def __call__(self, exchange: Exchange) -> Delegate:
        path = exchange.request.path
        if (
            path in PAGES
            or path[:1] != "/"
            or path[-1] == "/"
            or exchange.request.method in DAV_METHODS
        ):
            self.objects.cross_site(exchange)  # the pages' writes: the form, WebDAV, purges
            return TornadoDelegate(self.application, exchange)
        if path.startswith("/exists/"):
            return self.objects.delegate(exchange, path[8:], exists=True)
        if path.startswith(TURBO_PATH):
            turbo = self.turborepo.route(exchange)
            if turbo is not None:
                return turbo
        if NX_MARK in path:
            record = self.nx.route(exchange)
            if record is not None:
                return record
        return self.objects.delegate(exchange, path[1:])


def make_server(app: Application, settings: Settings) -> Server:
    """The HTTP(S) server with the limits of ``[frontend]``.

    ``idle_timeout`` bounds both the wait for a request's headers (a
    slowloris sending them byte by byte is cut off) and an idle keep-alive
    connection; ``body_timeout`` bounds a whole body, and an upload whose
    body stalls for ``idle_timeout`` is cut (``UploadSlots``).
    """
    frontend: Dependencies = app.settings["frontend"]
    objects = ObjectPath(frontend)
    objects.second_tier = frontend.readthrough  # [objectstore]: local misses read through
    if settings.bazel_check_action_results:
        objects.read_checks.append(ActionResultCheck(frontend))
    limits = Limits(
        max_header_size=settings.frontend_max_header_size,
        max_body_size=SMALL_BODY,  # uploads raise it per request
        idle_timeout=settings.frontend_idle_timeout,
        body_timeout=settings.frontend_body_timeout,
    )
    return Server(
        Router(app, objects),
        app.settings["log_function"].exchange_done,
        limits,
        settings.ssl_context(),
    )


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
    await server.drain(SHUTDOWN_GRACE)
    frontend.metrics.flush()  # the counts of the last answers
    await coordinator.close()
    if frontend.readthrough is not None and frontend.uploader is not None:
        frontend.readthrough.close()
        frontend.uploader.close()
    frontend.layout.close_dirs()
    log_flusher.stop()


def run(settings: Settings, number: int = 0) -> None:
    asyncio.run(serve(settings, number))
