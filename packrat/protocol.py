"""The wire protocol between front ends and the coordinator.

Both roles import this module and nothing else speaks to the socket.  A
message is one ZeroMQ frame holding a msgpack map with a version ``v``; the
coordinator's ROUTER adds the sender's identity frame in front, which stays
opaque and is echoed back.  No pickle: the coordinator decodes only maps of
plain values.

Requests (front end -> coordinator), each with ``op``:

``commit``  {id, key, staging, size, deadline}: publish a staged object.
``delete``  {id, key, reason}: remove an object (``reason``: "client" or "corrupt").
``stats``   {id}: counters for the status page.
``touch``   {keys, misses}: fire-and-forget batch of reads (no ``id``, no reply).

Replies carry the request's ``id`` and ``ok``; a failure adds ``error`` (a
short code) and ``message`` (a sentence for humans).
"""

from __future__ import annotations

from typing import Any

import msgpack

VERSION = 1

Message = dict[str, Any]


class ProtocolError(ValueError):
    """A frame that is not a message of this protocol version."""


def encode(message: Message) -> bytes:
    return msgpack.packb({"v": VERSION, **message})


def decode(frame: bytes) -> Message:
    try:
        message = msgpack.unpackb(frame)
    except (ValueError, msgpack.UnpackException) as e:
        raise ProtocolError(f"undecodable frame: {e}") from None
    if not isinstance(message, dict) or message.get("v") != VERSION:
        raise ProtocolError("not a version-1 message")
    if not isinstance(message.get("op", ""), str):
        raise ProtocolError("'op' is not a string")
    return message


def reply_ok(request_id: int, **fields: Any) -> Message:
    return {"id": request_id, "ok": True, **fields}


def reply_error(request_id: int | None, error: str, message: str) -> Message:
    return {"id": request_id, "ok": False, "error": error, "message": message}
