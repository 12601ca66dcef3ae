"""What front ends ask the uploader, over its ZeroMQ socket (msgpack maps, versioned).

``{"v": 1, "id": N, "op": "delete", "key": K}``: delete ``K`` in the store,
after any upload of it under way; the reply says whether the store had it.
``{"v": 1, "id": N, "op": "list", "prefix": P, "limit": L}``: the first ``L``
keys under ``P`` the store holds, in key order, and whether there are more.
``{"v": 1, "id": N, "op": "status"}``: the backlog and the store's state.
A reply is ``{"v": 1, "id": N, "ok": true, ...}`` or ``{"v": 1, "id": N,
"ok": false, "message": why}``.  Anything else is refused and logged; the
socket is bound on this host only (``ipc://`` mode 0600, or loopback).
"""

from __future__ import annotations

from typing import Any

import msgpack

VERSION = 1
OPS = ("delete", "list", "status")
MAX_LIST = 1000  # the most keys one list names (S3's own page)


class BadMessage(ValueError):
    """A frame that is not a request of this version."""


def encode(fields: dict[str, Any]) -> bytes:
    return msgpack.packb({"v": VERSION, **fields})


def decode(frame: bytes) -> dict[str, Any]:
    """A request or reply map; ``BadMessage`` unless it is well-formed."""
    try:
        fields = msgpack.unpackb(frame)
    except (ValueError, msgpack.UnpackException) as e:
        raise BadMessage(f"undecodable frame: {e}") from None
    if not isinstance(fields, dict) or fields.pop("v", None) != VERSION:
        raise BadMessage(f"not a version-{VERSION} message")
    if type(fields.get("id")) is not int:
        raise BadMessage("no id")
    return fields


def check_request(fields: dict[str, Any]) -> str | None:
    """What is wrong with a decoded request, if anything."""
    op = fields.get("op")
    if op not in OPS:
        return f"unknown op {op!r}"
    if op == "delete" and not isinstance(fields.get("key"), str):
        return "key must be a string"
    if op == "list":
        if not isinstance(fields.get("prefix"), str):
            return "prefix must be a string"
        limit = fields.get("limit")
        if type(limit) is not int or not 1 <= limit <= MAX_LIST:
            return f"limit must be a whole number from 1 to {MAX_LIST}"
    return None
