"""Waiting for a condition, bounded: a test never sleeps for a guess of how long.

``wait_until`` polls anything; ``wait_answering`` polls a URL until its
answer is the one wanted (a server starting, a front end restarted, a
balancer in front of them), failing at once if the process has exited.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import requests

T = TypeVar("T")
START_TIMEOUT = 20.0  # seconds a server may take to answer on a loaded 2-core machine


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something true, and return that; fail after
    ``timeout`` seconds, saying ``what`` was awaited and ``detail()`` (a log, say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    more = f"\n{detail()}" if detail else ""
    raise AssertionError(f"{what} not met within {timeout}s{more}")


def answer(
    url: str, timeout: float = 2.0, session: requests.Session | None = None, **request: object
) -> requests.Response | None:
    """``GET url`` (through ``session``), or None while nothing answers there (not
    listening yet, or too slow to answer on a loaded machine)."""
    try:
        return (session or requests).get(url, timeout=timeout, **request)
    except (requests.ConnectionError, requests.Timeout):
        return None


def is_ok(reply: requests.Response) -> bool:
    return reply.status_code == 200


def shows_figures(reply: requests.Response) -> bool:
    """The status page, with the coordinator's figures: the whole service answers."""
    return reply.status_code == 200 and "Objects" in reply.text


def wait_answering(
    url: str,
    accept: Callable[[requests.Response], bool] = is_ok,
    timeout: float = START_TIMEOUT,
    process: subprocess.Popen | None = None,
    log: Callable[[], str] | None = None,
    session: requests.Session | None = None,
    **request: object,
) -> requests.Response:
    """Poll ``GET url`` (through ``session``, with ``request``'s keywords) until ``accept``
    takes the answer; fail at once if ``process`` exits meanwhile, showing ``log()``."""

    def accepted() -> tuple[requests.Response] | None:  # a Response is false when not 2xx
        if process is not None and process.poll() is not None:
            shown = log() if log else ""
            raise AssertionError(f"exited with {process.returncode} before {url} answered\n{shown}")
        reply = answer(url, session=session, **request)
        return (reply,) if reply is not None and accept(reply) else None

    (reply,) = wait_until(accepted, timeout, what=f"an answer from {url}", detail=log)
    return reply


def refuses(url: str) -> bool:
    """Whether nothing listens at ``url`` (the connection is refused)."""
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return True
    return False
