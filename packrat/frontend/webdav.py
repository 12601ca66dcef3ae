"""WebDAV (RFC 4918, class 1) over the keys, for file tools: rclone, sccache, litmus.

Keys have no directories, so collections are implicit: ``/a/b/`` is the
collection of the keys starting with ``a/b/``, and it exists while there are
some (a key-value store keeps no empty directories: ``MKCOL`` answers 201 and
stores nothing, as object stores' WebDAV gateways do).  The root always
exists.  A path without the trailing ``/`` is an object when one is stored
under it, else the collection of that name.  Telling whether a collection
holds keys tells of their names, so to a caller without the ``list`` right a
path ending in ``/`` is a collection whatever it holds (sccache's writers
need no more), and any other path only an object.

``PROPFIND``  ``Depth: 0`` describes the object or collection; ``Depth: 1``
              adds what the collection holds, its keys and sub-collections, a
              page of the coordinator's index (``listing``) at a time, each
              sent as it comes: whatever a collection holds, neither side
              keeps more than a page.  ``Depth: infinity`` is refused (403,
              ``propfind-finite-depth``), as RFC 4918 allows.  Objects have
              ``getcontentlength``, ``getlastmodified``, ``getetag`` (the
              quoted sha256), ``getcontenttype``, ``displayname``; an unknown
              property asked for by name is 404 in its ``propstat``
``PROPPATCH`` 403 for every property: only the live ones above exist
``MKCOL``     201, storing nothing (405 where an object has that name; 415 with a body)
``DELETE``    of a collection: every key under it, in the purge's batches
``OPTIONS``   ``DAV: 1`` and the methods allowed
``GET``, ``HEAD``, ``PUT``, ``POST``, ``DELETE`` of an object stay the
object path's.  ``COPY``, ``MOVE`` and locks are not offered (405).

Rights: reading an object's or a collection's properties needs ``read``;
anything that lists names (``Depth: 1``, or finding that a path without
``/`` is a non-empty collection) needs ``list``; ``MKCOL`` and ``PROPPATCH``
need ``write``, ``DELETE`` of a collection ``write`` and ``list``.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

from tornado.httputil import HTTPServerRequest, format_timestamp
from tornado.iostream import StreamClosedError
from tornado.routing import PathMatches
from tornado.web import HTTPError, RequestHandler

from packrat.coordinator.protocol import MAX_PAGE
from packrat.core.errors import BadRequest, NotFound
from packrat.core.keys import key_path, validate_key, validate_prefix
from packrat.frontend.auth import LIST, READ, WRITE
from packrat.frontend.base import BaseHandler
from packrat.frontend.listing import list_page, purge_page, read_meta
from packrat.store import ObjectMeta

DAV = "DAV:"
XML_TYPE = 'application/xml; charset="utf-8"'
# The methods only WebDAV uses: the application routes them here whatever the path.
DAV_METHODS = ("PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "OPTIONS")
ALLOWED = "OPTIONS, GET, HEAD, PUT, POST, DELETE, PROPFIND, PROPPATCH, MKCOL"
HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'
TAIL = "</D:multistatus>\n"


class DAVMethods(PathMatches):
    """Matches ``pattern`` for the WebDAV methods only, so ``PROPFIND /key`` reaches
    ``DAVHandler`` while ``GET /key`` stays the object path's."""

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        return super().match(request) if request.method in DAV_METHODS else None


def parse_propfind(body: bytes) -> tuple[str, list[tuple[str, str]]]:
    """What a ``PROPFIND`` body asks: ``("allprop", [])``, ``("propname", [])`` or
    ``("prop", [(namespace, name), ...])``; an empty body is ``allprop``.

    >>> parse_propfind(b'<propfind xmlns="DAV:"><prop><getetag/><x xmlns="y"/></prop></propfind>')
    ('prop', [('DAV:', 'getetag'), ('y', 'x')])
    """
    if not body.strip():
        return "allprop", []
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise BadRequest(f"the PROPFIND body is not well-formed XML: {e}") from None
    if root.tag != f"{{{DAV}}}propfind":
        raise BadRequest("the PROPFIND body must be a DAV: propfind element")
    for child in root:
        kind = _split(child.tag)
        if kind == (DAV, "allprop"):
            return "allprop", []
        if kind == (DAV, "propname"):
            return "propname", []
        if kind == (DAV, "prop"):
            return "prop", [_split(prop.tag) for prop in child]
    raise BadRequest("the PROPFIND body names no allprop, propname or prop")


def _split(tag: str) -> tuple[str, str]:
    namespace, _, name = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, name


def live_props(entry: ObjectMeta | str) -> dict[str, str]:
    """The live properties of an object (its metadata) or a collection (its name), as XML."""
    if isinstance(entry, str):
        name = entry.rstrip("/").rpartition("/")[2]
        return {
            "resourcetype": "<D:resourcetype><D:collection/></D:resourcetype>",
            "displayname": f"<D:displayname>{escape(name)}</D:displayname>",
            # A collection changes whenever a key below it does: it is as of now
            # (clients such as sccache's need a date on every entry).
            "getlastmodified": _modified(time.time()),
        }
    return {
        "resourcetype": "<D:resourcetype/>",
        "displayname": f"<D:displayname>{escape(entry.key.rpartition('/')[2])}</D:displayname>",
        "getcontentlength": f"<D:getcontentlength>{entry.size}</D:getcontentlength>",
        "getcontenttype": f"<D:getcontenttype>{escape(entry.content_type)}</D:getcontenttype>",
        "getetag": f'<D:getetag>"{entry.sha256}"</D:getetag>',
        "getlastmodified": _modified(entry.stored_at),
    }


def _modified(seconds: float) -> str:
    return f"<D:getlastmodified>{format_timestamp(seconds)}</D:getlastmodified>"


def response(entry: ObjectMeta | str, mode: str, asked: list[tuple[str, str]]) -> str:
    """One ``<D:response>`` of a multistatus for an object or a collection."""
    props = live_props(entry)
    path = entry if isinstance(entry, str) else entry.key
    parts = [f"<D:response><D:href>{escape(key_path(path))}</D:href>"]
    if mode == "propname":
        names = "".join(f"<D:{name}/>" for name in props)
        parts.append(_propstat(names, "200 OK"))
    elif mode == "allprop":
        parts.append(_propstat("".join(props.values()), "200 OK"))
    else:
        found = [props[name] for ns, name in asked if ns == DAV and name in props]
        missing = [(ns, name) for ns, name in asked if ns != DAV or name not in props]
        if found:
            parts.append(_propstat("".join(found), "200 OK"))
        if missing:
            parts.append(
                _propstat("".join(_empty(ns, name) for ns, name in missing), "404 Not Found")
            )
    parts.append("</D:response>")
    return "".join(parts)


def _propstat(props: str, status: str) -> str:
    return (
        f"<D:propstat><D:prop>{props}</D:prop><D:status>HTTP/1.1 {status}</D:status></D:propstat>"
    )


def _empty(namespace: str, name: str) -> str:
    if namespace == DAV:
        return f"<D:{escape(name)}/>"
    return f'<X:{escape(name)} xmlns:X="{escape(namespace, {chr(34): "&quot;"})}"/>'


class DAVHandler(BaseHandler):
    """WebDAV's own methods on any path, and every method on a collection (``/<prefix>/``)."""

    # COPY, MOVE, LOCK and UNLOCK are routed here and refused: 405 with Allow.
    SUPPORTED_METHODS = (
        *RequestHandler.SUPPORTED_METHODS,
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
    )
    RIGHTS = {
        **BaseHandler.RIGHTS,
        "PROPFIND": READ,
        "PROPPATCH": WRITE,
        "MKCOL": WRITE,
        "OPTIONS": READ,
    }
    route = "webdav"  # WebDAV methods on any path, and collections: one label
    path = ""  # the request's path without its leading '/'

    async def prepare(self) -> None:
        await self.authorize()
        self.path = self.path_args[0] or ""
        if self.request.method in DAV_METHODS or self.request.method == "DELETE":
            validate_prefix(self.path)
        else:
            validate_key(self.path)  # GET /a/ and the like: not a key (400), as ever

    async def options(self, _: str) -> None:
        self.set_header("DAV", "1")
        self.set_header("Allow", ALLOWED)
        self.set_header("MS-Author-Via", "DAV")
        self.set_header("Content-Length", "0")
        self.finish()

    async def propfind(self, _: str) -> None:
        depth = self.request.headers.get("Depth", "infinity").strip().lower()
        if depth not in ("0", "1"):
            self.set_status(403)
            self.set_header("Content-Type", XML_TYPE)
            self.finish(
                '<?xml version="1.0" encoding="utf-8"?>\n'
                '<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n'
            )
            return
        mode, asked = parse_propfind(self.request.body)
        target = await self._resolve()
        self.set_status(207)
        self.set_header("Content-Type", XML_TYPE)
        if depth == "0" or not isinstance(target, str):
            self.finish(HEAD + response(target, mode, asked) + TAIL)
            return
        await self._require(LIST)
        entries, cursor = await list_page(self.frontend, target, "", MAX_PAGE, collections=True)
        self.write(HEAD + response(target, mode, asked))
        while True:
            self.write("".join(response(entry, mode, asked) for entry in entries))
            if cursor is None:
                break
            try:
                await self.flush()
            except StreamClosedError:
                return  # the client left; its access line says so
            entries, cursor = await list_page(
                self.frontend, target, cursor, MAX_PAGE, collections=True
            )
        self.finish(TAIL)

    async def proppatch(self, _: str) -> None:
        target = await self._resolve()
        try:
            root = ET.fromstring(self.request.body)
        except ET.ParseError as e:
            raise BadRequest(f"the PROPPATCH body is not well-formed XML: {e}") from None
        names = [_split(prop.tag) for change in root for holder in change for prop in holder]
        path = target if isinstance(target, str) else target.key
        props = "".join(_empty(ns, name) for ns, name in names)
        self.set_status(207)
        self.set_header("Content-Type", XML_TYPE)
        self.finish(
            f"{HEAD}<D:response><D:href>{escape(key_path(path))}</D:href>"
            f"{_propstat(props, '403 Forbidden')}"
            "<D:responsedescription>Packrat keeps only the live properties of what it "
            "stores</D:responsedescription></D:response>" + TAIL
        )

    async def mkcol(self, _: str) -> None:
        if self.request.body:
            raise HTTPError(415)  # RFC 4918 9.3.1: a body this server does not understand
        name = self.path.rstrip("/")
        if not name or read_meta(self.frontend, name) is not None:
            raise HTTPError(405)  # the root, or an object under that name: it exists
        validate_key(name)
        self.set_status(201)
        self.finish()

    async def delete(self, _: str) -> None:
        """``DELETE /<prefix>/``: the collection, that is every key under it."""
        await self._require(LIST)
        while True:
            _, more = await purge_page(self.frontend, self.path)
            if not more:
                break
        self.set_status(204)
        self.finish()

    async def _resolve(self) -> ObjectMeta | str:
        """What the path names: an object's metadata, or a collection's prefix ('' is the root).

        A collection exists while keys lie below it; to a caller who may not
        list names, whose answer would tell of them, a path ending in ``/`` is
        a collection whatever it holds, and any other path only an object.
        """
        path = self.path
        if path == "":
            return path
        if not path.endswith("/"):
            validate_key(path)
            meta = read_meta(self.frontend, path)
            if meta is not None:
                return meta
            path += "/"
        elif not await self._may(LIST):
            return path
        if await self._may(LIST):
            below, _ = await self.frontend.coordinator.list_keys(path, "", 1)
            if below:
                return path
        raise NotFound(f"no object or collection under {self.path!r}")

    async def _may(self, right: str) -> bool:
        return await self.frontend.auth.allows(right, self.request.headers.get("Authorization"))

    async def _require(self, right: str) -> None:
        await self.frontend.auth.require(right, self.request.headers.get("Authorization"))

    def _allowed_methods(self) -> set[str]:
        return set(ALLOWED.split(", "))
