"""Web origins (``scheme://host[:port]``), as browsers send them in ``Origin``.

The one rule of what an origin is, for the cross-site check
(``frontend.crosssite``) and the setting that lists allowed ones
(``[frontend] allowed_origins``).
"""

from __future__ import annotations

import re

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
