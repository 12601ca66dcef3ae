"""Whether a request that changes state was sent by a browser for another site's page.

A page open in any browser that can reach Packrat can submit a form or a
no-cors ``fetch`` to it, and a browser resends HTTP Basic credentials on such
requests: without this rule any web page could overwrite keys.  Browsers say
where a request comes from: ``Origin`` on every ``POST`` (forms included) and
on any other method ``fetch`` sends, and ``Sec-Fetch-Site`` on every request
of a modern browser.  So a state-changing request is refused when

* its ``Origin`` is not this server's own (the request's scheme and ``Host``)
  nor one of the origins a setting allows (``null``, sent by sandboxed pages
  and privacy-conscious redirects, is no origin), or
* it has no ``Origin`` and ``Sec-Fetch-Site`` says ``cross-site`` or
  ``same-site`` (a page of the same host on another port is another origin).

Requests with neither header are not a browser's (curl, build tools, the
client library) and pass, as do ``Sec-Fetch-Site: same-origin`` and
``none`` (the user typed the address).  Reads are never refused here: a page
cannot read another origin's answers.  Behind a proxy that rewrites ``Host``,
the public origin goes in the allowed list.

``CrossSite`` applies the rule to requests, with the origins ``[frontend]
allowed_origins`` lists: the object path runs it first among its checks
(``objects.ObjectPath.checks``), the router before handing a request to the
``Application`` (the status page's form, WebDAV, ``/api/keys``), and
Turborepo's JSON routes before theirs; all before any byte of a body is
read.  (Pages of this origin send their real ``Origin``: the status page's
``Referrer-Policy`` is ``same-origin``, as ``no-referrer`` would make a
browser send ``Origin: null`` on the page's own form posts.)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from packrat.core.errors import CrossSiteRequest
from packrat.core.origins import normalize_origin

if TYPE_CHECKING:
    from packrat.frontend.http1 import Exchange

# Methods that change nothing (RFC 9110 9.2.1, and WebDAV's PROPFIND).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND"})


def cross_site(
    method: str,
    origin: str | None,
    fetch_site: str | None,
    scheme: str,
    host: str | None,
    allowed: Collection[str] = (),
) -> str | None:
    """Why this request is refused as a cross-site write, or None when it may go on.

    ``origin`` and ``fetch_site`` are the ``Origin`` and ``Sec-Fetch-Site``
    headers (None when absent), ``scheme`` and ``host`` the request's own
    (``Host``), ``allowed`` further origins, normalized (``normalize_origin``).

    >>> cross_site("POST", "http://evil.example", "cross-site", "http", "cache:5050")
    "the request comes from the page of another origin ('http://evil.example')"
    >>> cross_site("PUT", "http://cache:5050", "same-origin", "http", "cache:5050") is None
    True
    """
    if method.upper() in SAFE_METHODS:
        return None
    if origin is not None:
        normalized = normalize_origin(origin)
        own = normalize_origin(f"{scheme}://{host}") if host else None
        if normalized is not None and (normalized == own or normalized in allowed):
            return None
        return f"the request comes from the page of another origin ({origin!r})"
    site = (fetch_site or "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"the request comes from another site's page (Sec-Fetch-Site: {site})"
    return None


class CrossSite:
    """The rule, applied to a request's headers: ``CrossSiteRequest`` (403) when refused."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = frozenset(allowed)  # normalized origins

    def __call__(self, exchange: Exchange) -> None:
        request = exchange.request
        if request.method in SAFE_METHODS:
            return
        headers = request.headers
        origin, site = headers.get("origin"), headers.get("sec-fetch-site")
        if origin is None and site is None:
            return  # not a browser's request (the usual case: one look each)
        scheme = "https" if exchange.connection.tls else "http"
        why = cross_site(request.method, origin, site, scheme, headers.get("host"), self.allowed)
        if why is not None:
            raise CrossSiteRequest(
                f"{why}: a page of another site may not change what is stored here "
                "(list its origin in [frontend] allowed_origins to allow it); nothing was done"
            )
