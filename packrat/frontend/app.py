"""One front-end process: the Tornado application on a shared port.

Every front end binds the same port with ``SO_REUSEPORT`` and the kernel
spreads connections across them.  Nothing touches the event loop before the
process is its own (no fork after the loop exists).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from packrat.config import Settings
from packrat.frontend.api import StatsHandler
from packrat.frontend.auth import Authenticator
from packrat.frontend.base import BaseHandler
from packrat.frontend.client import CoordinatorClient
from packrat.frontend.handlers import (
    SMALL_BODY,
    ExistsHandler,
    NotFoundHandler,
    ObjectHandler,
    OpenAPIHandler,
    StaticHandler,
    StatusHandler,
)
from packrat.storage import Layout

log = logging.getLogger("packrat.frontend")

HERE = Path(__file__).parent
SHUTDOWN_GRACE = 5.0  # seconds in-flight requests get after SIGTERM


def make_app(settings: Settings, client: CoordinatorClient) -> Application:
    layout = Layout(settings.cache_root)
    deps = {
        "settings": settings,
        "layout": layout,
        "client": client,
        "auth": Authenticator(settings),
    }
    # Keep in step with packrat.keys.RESERVED_PREFIXES and openapi.json.
    return Application(
        [
            (r"/", StatusHandler, deps),
            (r"/static/(packrat\.css)", StaticHandler, {"path": str(HERE / "static")}),
            (r"/api/openapi\.json", OpenAPIHandler, deps),
            (r"/api/stats", StatsHandler, deps),
            (r"/exists/(.+)", ExistsHandler, deps),
            (r"/(.+)", ObjectHandler, deps),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=deps,
        template_path=str(HERE / "templates"),
        xsrf_cookies=False,
        compress_response=False,  # byte ranges and Content-Length are of the stored bytes
    )


def make_server(app: Application, settings: Settings) -> HTTPServer:
    """The HTTP(S) server with the slow-client limits of ``[frontend]``.

    ``idle_connection_timeout`` bounds both the wait for a request's headers
    (a slowloris sending them byte by byte is cut off) and an idle
    keep-alive connection; ``body_timeout`` bounds the whole body.
    """
    return HTTPServer(
        app,
        ssl_options=settings.ssl_context(),
        max_body_size=SMALL_BODY,  # uploads raise it per request
        max_header_size=settings.frontend_max_header_size,
        idle_connection_timeout=settings.frontend_idle_timeout,
        body_timeout=settings.frontend_body_timeout,
    )


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting and finish."""
    Layout(settings.cache_root).create()
    client = CoordinatorClient(
        settings.coordinator_endpoint,
        settings.coordinator_timeout,
        settings.frontend_touch_interval,
    )
    client.start()
    server = make_server(make_app(settings, client), settings)
    sockets = bind_sockets(settings.server_port, settings.server_host, reuse_port=True)
    server.add_sockets(sockets)
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
    await client.close()


def run(settings: Settings) -> None:
    asyncio.run(serve(settings))
