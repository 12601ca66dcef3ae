"""The wire protocol between front ends and the coordinator, as typed messages.

Both roles import this module and nothing else speaks to the socket.  A
message is one ZeroMQ frame holding a msgpack map with a version ``v`` and
an ``op``; the coordinator's ROUTER adds the sender's identity frame in
front, which stays opaque and is echoed back.  A request is one frame; a
reply message may hold several replies, a frame each, in their order (the
coordinator sends a turn's replies to one front end together), so a
client reads replies one frame at a time.  No pickle, and every field of
every request is checked for its type before the coordinator acts on it: a
malformed request gets an ``invalid_message`` reply (or, without a usable
``id``, is dropped) and the coordinator goes on.  Messages are plain slotted
dataclasses, not frozen ones: a frozen one's ``__init__`` sets each field
through ``object.__setattr__``, which made a commit's request and reply
cost the coordinator about 5 µs more; nothing changes a message once made.

Requests (front end -> coordinator):

``Commit``  publish a staged upload (``file_size``: its bytes, trailer included;
            ``size`` and ``filename``: its data bytes and name, for the
            status page's recent uploads; ``only_if_absent``: not committed
            when the key has an object, and the reply says ``present``: an
            object fetched from the object store never replaces one stored
            here meanwhile)
``Delete``  remove an object (a client's ``DELETE``)
``Drop``    remove a corrupt object file, found by a reader or fsck: the file
            called ``name`` in ``objects/``, only if it is still the file
            ``inode`` (a newer object in its place is left alone)
``Stats``   the index's figures
``ListKeys`` a page of the keys under a prefix (``after``: the cursor; at most
            ``limit``, never more than ``MAX_PAGE``; ``collections``: keys
            below the next ``/`` rolled up into their collection)
``Purge``   remove a batch of at most ``limit`` keys under a prefix; the reply
            names them and says whether more remain, so a big purge is many
            short requests the coordinator serves others between
``Touch``   fire-and-forget batch of reads (hits) and misses, with the HTTP
            body bytes received and sent since the last batch and the
            sender's front-end ``number`` and ``pid`` (0: not a front end);
            no reply.  A front end sends one at least every few seconds,
            empty if need be, so the coordinator knows it is alive

Every request but ``Touch`` carries an ``id`` that its ``Reply`` echoes and a
``deadline`` (Unix time) after which the coordinator refuses it as ``stale``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import msgpack

from packrat.core.errors import ErrorCode

VERSION = 4
MAX_PAGE = 1000  # the most keys one List or Purge names: every reply stays small


class ProtocolError(ValueError):
    """A frame that is not a well-formed message of this protocol version.

    ``request_id`` is set when the frame had a usable ``id`` to answer.
    """

    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


@dataclass(slots=True)
class Commit:
    id: int
    deadline: float
    key: str
    staging: str
    file_size: int
    size: int = 0  # data bytes
    filename: str = ""
    only_if_absent: bool = False


@dataclass(slots=True)
class Delete:
    id: int
    deadline: float
    key: str


@dataclass(slots=True)
class Drop:
    id: int
    deadline: float
    name: str  # the object file's name: sha256 of its key, in hex
    inode: tuple[int, int]  # st_dev, st_ino of the bad file
    key: str | None = None  # its key, when the reader knows it


@dataclass(slots=True)
class Stats:
    id: int
    deadline: float


@dataclass(slots=True)
class ListKeys:
    id: int
    deadline: float
    prefix: str
    after: str = ""
    limit: int = MAX_PAGE
    collections: bool = False


@dataclass(slots=True)
class Purge:
    id: int
    deadline: float
    prefix: str
    limit: int = MAX_PAGE


@dataclass(slots=True)
class Touch:
    keys: tuple[str, ...]
    misses: int = 0
    bytes_in: int = 0  # HTTP body bytes received since the last batch
    bytes_out: int = 0  # HTTP body bytes sent since the last batch
    number: int = 0  # the sender's front-end number
    pid: int = 0  # the sender's process id; 0: not a front end


Request = Commit | Delete | Drop | ListKeys | Purge | Stats | Touch


@dataclass(slots=True)
class Reply:
    id: int
    error: ErrorCode | None = None
    message: str = ""
    evicted: int = 0  # Commit: objects evicted to make room
    present: bool = False  # Commit only_if_absent: the key had an object; nothing was done
    stats: dict[str, Any] = field(default_factory=dict)  # Stats: the index's figures
    keys: tuple[str, ...] = ()  # List: the page; Purge: the keys removed
    more: bool = False  # List, Purge: entries remain after these

    @property
    def ok(self) -> bool:
        return self.error is None


_OPS: dict[str, type[Request]] = {
    "commit": Commit,
    "delete": Delete,
    "drop": Drop,
    "list": ListKeys,
    "purge": Purge,
    "stats": Stats,
    "touch": Touch,
}
_OP_NAMES = {cls: name for name, cls in _OPS.items()}
_FIELDS = {cls: tuple(f.name for f in fields(cls)) for cls in (*_OPS.values(), Reply)}


def encode(message: Request | Reply) -> bytes:
    # Field by field, not ``dataclasses.asdict``: that deep-copies every key
    # of a Touch batch, and encoding was a third of a batch's cost.
    if type(message) is Reply and message.error is None and not _extras(message):
        # A commit's or delete's reply, one per commit: its fields at once.
        if message.evicted:
            return msgpack.packb({"v": VERSION, "id": message.id, "evicted": message.evicted})
        return msgpack.packb({"v": VERSION, "id": message.id})
    fields = {"v": VERSION}
    for name in _FIELDS[type(message)]:
        value = getattr(message, name)
        if value or name == "id" or type(message) is not Reply:
            fields[name] = value
    if type(message) is not Reply:
        fields["op"] = _OP_NAMES[type(message)]
    return msgpack.packb(fields)


def _extras(reply: Reply) -> bool:
    """Whether a reply has a field besides ``id``, ``error`` and ``evicted``."""
    return bool(reply.present or reply.message or reply.stats or reply.keys or reply.more)


def decode_request(frame: bytes) -> Request:
    fields = _unpack(frame)
    request_id = fields.get("id") if type(fields.get("id")) is int else None
    op = fields.pop("op", None)
    cls = _OPS.get(op) if isinstance(op, str) else None
    if cls is None:
        raise ProtocolError(f"unknown op {op!r}", request_id)
    try:
        request = cls(**fields)
    except TypeError as e:
        raise ProtocolError(f"malformed {op} request: {e}", request_id) from None
    problem = _check(request)
    if problem:
        raise ProtocolError(f"malformed {op} request: {problem}", request_id)
    return request


def decode_reply(frame: bytes) -> Reply:
    fields = _unpack(frame)
    try:
        if "error" in fields:
            fields["error"] = ErrorCode(fields["error"])
        reply = Reply(**fields)
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"malformed reply: {e}") from None
    if type(reply.id) is not int:
        raise ProtocolError("malformed reply: no id")
    if not (_strings(reply.keys) and type(reply.more) is bool):
        raise ProtocolError("malformed reply: keys must be a list of strings, more a boolean")
    return reply


def _unpack(frame: bytes) -> dict[str, Any]:
    try:
        fields = msgpack.unpackb(frame, use_list=False)
    except (ValueError, msgpack.UnpackException) as e:
        raise ProtocolError(f"undecodable frame: {e}") from None
    if not isinstance(fields, dict) or fields.pop("v", None) != VERSION:
        raise ProtocolError(f"not a version-{VERSION} message")
    return fields


def _check(request: Request) -> str | None:
    """What is wrong with a decoded request's field types, if anything."""
    if isinstance(request, Touch):
        if not _strings(request.keys):
            return "keys must be a list of strings"
        counts = (request.misses, request.bytes_in, request.bytes_out, request.number, request.pid)
        return None if all(map(_count, counts)) else "misses, bytes, number and pid must be counts"
    if not _count(request.id):
        return "id must be a count"
    if type(request.deadline) not in (int, float):
        return "deadline must be a number"
    if isinstance(request, Commit):
        # Each test written out, not a generator over the three: one per commit.
        strings = isinstance(request.key, str) and isinstance(request.staging, str)
        if not (strings and isinstance(request.filename, str)):
            return "key, staging and filename must be strings"
        sizes_ok = _count(request.file_size) and _count(request.size)
        if type(request.only_if_absent) is not bool:
            return "only_if_absent must be a boolean"
        return None if sizes_ok else "file_size and size must be counts"
    if isinstance(request, Delete) and not isinstance(request.key, str):
        return "key must be a string"
    if isinstance(request, ListKeys | Purge):
        after = request.after if isinstance(request, ListKeys) else ""
        if not (isinstance(request.prefix, str) and isinstance(after, str)):
            return "prefix and after must be strings"
        if not (_count(request.limit) and 1 <= request.limit <= MAX_PAGE):
            return f"limit must be a count from 1 to {MAX_PAGE}"
        if isinstance(request, ListKeys) and type(request.collections) is not bool:
            return "collections must be a boolean"
    if isinstance(request, Drop):
        if not (isinstance(request.name, str) and isinstance(request.key, str | None)):
            return "name and key must be strings"
        inode = request.inode
        if not (isinstance(inode, tuple) and len(inode) == 2 and all(map(_count, inode))):
            return "inode must be two counts"
    return None


def _strings(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(item, str) for item in value)


def _count(value: object) -> bool:
    return type(value) is int and value >= 0
