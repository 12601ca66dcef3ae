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
"""

from __future__ import annotations

import re
from collections.abc import Collection

# Methods that change nothing (RFC 9110 9.2.1, and WebDAV's PROPFIND).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND"})
DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s/:?#@\[\]]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without its scheme's default port, or None
    when ``origin`` is not one (``null``, a path, credentials, a port out of range).

    >>> normalize_origin("HTTP://Example.COM:80"), normalize_origin("https://[::1]:8443")
    ('http://example.com', 'https://[::1]:8443')
    >>> normalize_origin("null"), normalize_origin("http://a.b/path")
    (None, None)
    """
    match = _ORIGIN.fullmatch(origin.strip())
    if match is None:
        return None
    scheme, host = match["scheme"].lower(), match["host"].lower()
    port = int(match["port"]) if match["port"] else DEFAULT_PORTS.get(scheme)
    if port is None or not 0 < port < 65536:
        return None
    return (
        f"{scheme}://{host}" if DEFAULT_PORTS.get(scheme) == port else f"{scheme}://{host}:{port}"
    )


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
