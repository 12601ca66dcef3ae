"""Bazel's key scheme on the object path: what ``cas/`` and ``ac/`` entries must hold.

``check_upload`` runs on every upload once its body is staged, before it is
sealed and committed (``uploads.Upload.commit``), whichever route brought it
(``PUT``/``POST /<key>``, the status page's form):

* a key under a ``cas`` segment, however spelled (``buildtools.cas``), is
  content-addressed: the body must hash to the digest it names, by sha256
  (computed as the body streamed in, so free) or else by BLAKE3 (Bazel's
  ``--digest_function=blake3``: the staged body is read back on a thread and
  hashed, a cost only such uploads pay); otherwise 400 ``checksum_mismatch``
  and nothing is stored, so no build can be served a poisoned output.
* with ``[bazel] check_action_results`` (on by default), a key ``P/ac/<hash>``
  holds an ``ActionResult`` whose blobs must be stored under ``P/cas/``
  (``buildtools.reapi`` says which: bazel-remote's list); one that does not
  parse, or names a blob that is not stored, is refused with 400
  ``invalid_action_result``, the status bazel-remote gives an action result
  it will not store.  Bazel uploads an action's outputs before its result,
  so its own uploads pass; an entry that would send every build that reads
  it to a missing output is never stored.

``ActionResultCheck`` is the read side of the same setting, one of the
object path's ``read_checks``: a ``GET``/``HEAD`` (or ``/exists/``) of an
``ac/`` entry looks at its blobs first, and an entry whose blobs were evicted
since, or that does not parse, is answered as a miss (404), so Bazel reruns
the action instead of failing on the missing output later, as bazel-remote's
``GetValidatedActionResult`` does.

"Stored" means on this node's disk (one ``stat`` per blob, no read), or, with
an object store behind the cache, in the store: only the blobs missing here
are asked for there (``HEAD``, all at once), so a warm cache pays nothing for
the store.  A ``Tree`` (an output directory) is read, from here or through
the store, for the files it names.  The empty blob needs no storage.  What a
message names is remembered by the sha256 of its bytes (so never stale),
within ``PARSE_BUDGET`` digests per front end: a read of an entry read
before costs its ``open`` and one ``stat`` per blob, no parse.  A
message over ``MAX_MESSAGE`` bytes is not read: an action result that large
is refused when uploaded and served unchecked if stored before (with the
check off), and the files of a ``Tree`` that large are not looked at.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import blake3

from packrat.buildtools.cas import blobs_of, body_matches, content_address
from packrat.buildtools.reapi import (
    Digest,
    MalformedMessage,
    Outputs,
    output_digests,
    tree_digests,
)
from packrat.core.errors import ChecksumMismatch, InvalidActionResult
from packrat.store import CorruptObject, StagedFile, is_stored, open_to_read, read_data

if TYPE_CHECKING:
    from packrat.frontend.dependencies import Dependencies

MAX_MESSAGE = 16 << 20  # bytes of an ActionResult or a Tree read to check it
READ_WHOLE = 64 << 10  # a message up to this size is read with its trailer in one pread
PARSE_BUDGET = 100_000  # digests of parsed messages remembered per front end (~15 MB)


class Unchecked(Exception):
    """A message over ``MAX_MESSAGE`` bytes: not read."""


@dataclass(frozen=True, slots=True)
class Elsewhere:
    """What this disk lacks of an action result's blobs: to be asked of the object store."""

    blobs: list[str]  # keys of blobs not stored here
    trees: list[Digest]  # Trees not stored here (their files are needed too)


class Parsed:
    """What messages name, by the sha256 of their bytes, least recently used first out."""

    def __init__(self, budget: int = PARSE_BUDGET) -> None:
        self.budget = budget
        self.held = 0  # digests in ``entries``
        self.entries: OrderedDict[tuple[bool, str], tuple[Outputs | list[Digest], int]] = (
            OrderedDict()
        )

    def outputs(self, message: bytes, sha256: str) -> Outputs:
        """``reapi.output_digests`` of an ActionResult whose sha256 is ``sha256``."""
        found = self._get((True, sha256))
        if found is None:
            found = output_digests(message)
            self._put((True, sha256), found, len(found.files) + len(found.trees))
        assert isinstance(found, Outputs)
        return found

    def tree(self, data: bytes, sha256: str) -> list[Digest]:
        """``reapi.tree_digests`` of a Tree whose sha256 is ``sha256``."""
        found = self._get((False, sha256))
        if found is None:
            found = tree_digests(data)
            self._put((False, sha256), found, len(found))
        assert isinstance(found, list)
        return found

    def _get(self, key: tuple[bool, str]) -> Outputs | list[Digest] | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        self.entries.move_to_end(key)
        return entry[0]

    def _put(self, key: tuple[bool, str], value: Outputs | list[Digest], digests: int) -> None:
        size = digests + 1
        if size > self.budget:
            return
        self.entries[key] = (value, size)
        self.held += size
        while self.held > self.budget:
            _, (_, dropped) = self.entries.popitem(last=False)
            self.held -= dropped


PARSED = Parsed()


def check_upload(frontend: Dependencies, key: str, staged: StagedFile) -> Awaitable[None] | None:
    """Refuse a staged body that its key's scheme does not allow (see the module's doc):
    None when there is nothing to wait for (most keys: no event-loop round), else the
    check to await."""
    address = content_address(key)
    if address is not None:
        if address == staged.hexdigest():
            return None
        return _check_blake3(address, staged)
    blobs = blobs_of(key)
    if blobs is None or not frontend.settings.bazel_check_action_results:
        return None
    return _check_action_result(frontend, blobs, staged)


async def _check_blake3(address: str, staged: StagedFile) -> None:
    sha256 = staged.hexdigest()
    if not body_matches(address, sha256, await asyncio.to_thread(_blake3, staged)):
        raise ChecksumMismatch(
            f"a key under cas/ names its content: this upload's sha256 is {sha256}, and "
            "its BLAKE3 differs too; nothing was stored"
        )


async def _check_action_result(frontend: Dependencies, blobs: str, staged: StagedFile) -> None:
    if staged.size > MAX_MESSAGE:
        raise InvalidActionResult(
            f"an action result under ac/ has at most {MAX_MESSAGE} bytes; nothing was stored"
        )
    message = await asyncio.to_thread(lambda: b"".join(staged.data()))
    try:
        missing = look_here(frontend, blobs, message, staged.hexdigest())
        if isinstance(missing, Elsewhere):
            missing = await ask_store(frontend, blobs, missing)
    except MalformedMessage as e:
        raise InvalidActionResult(
            f"the body is not an ActionResult ({e}); nothing was stored"
        ) from None
    if missing is not None:
        raise InvalidActionResult(
            f"the action result names {missing}, which is not stored: upload an action's "
            "outputs before its result; nothing was stored"
        )


class ActionResultCheck:
    """The read check of ``ac/`` entries (``objects.ObjectPath.read_checks``).

    An entry and its blobs all on this disk are checked at once, without an
    event-loop round (a parse and one ``stat`` per blob); only what involves
    the object store is awaited.
    """

    def __init__(self, frontend: Dependencies) -> None:
        self.frontend = frontend

    def __call__(self, key: str) -> str | Awaitable[str | None] | None:
        """Why ``key``'s action result cannot be served, or None (it can, or it is
        absent and the read answers that itself); an awaitable of either."""
        blobs = blobs_of(key)
        if blobs is None:
            return None
        try:
            message = read_here(self.frontend, key)
        except Unchecked:
            return None
        if message is not None:
            return self._judge(key, blobs, message)
        if self.frontend.readthrough is None:
            return None
        return self._through_store(key, blobs)

    def _judge(
        self, key: str, blobs: str, message: tuple[bytes, str]
    ) -> str | Awaitable[str | None] | None:
        try:
            missing = look_here(self.frontend, blobs, *message)
        except MalformedMessage as e:
            return f"the action result under key {key!r} does not parse ({e})"
        if isinstance(missing, Elsewhere):
            return self._ask(key, blobs, missing)
        return None if missing is None else _missing(key, missing)

    async def _ask(self, key: str, blobs: str, elsewhere: Elsewhere) -> str | None:
        try:
            missing = await ask_store(self.frontend, blobs, elsewhere)
        except MalformedMessage as e:
            return f"a Tree named by the action result under key {key!r} does not parse ({e})"
        return None if missing is None else _missing(key, missing)

    async def _through_store(self, key: str, blobs: str) -> str | None:
        try:
            message = await read_through(self.frontend, key)
        except Unchecked:
            return None
        if message is None:
            return None
        judged = self._judge(key, blobs, message)
        return judged if judged is None or isinstance(judged, str) else await judged


def _missing(key: str, blob: str) -> str:
    return f"the action result under key {key!r} names {blob}, which is not stored"


def look_here(
    frontend: Dependencies, blobs: str, message: bytes, sha256: str
) -> str | Elsewhere | None:
    """What this disk says of the blobs ``message`` (an ActionResult whose sha256 is
    ``sha256``) needs under ``blobs``: None when all are here, the key of one missing
    when there is no object store to ask, else what to ask it (``Elsewhere``).
    ``MalformedMessage`` if a message does not parse."""
    outputs = PARSED.outputs(message, sha256)
    needed = list(outputs.files)
    trees: list[Digest] = []
    for tree in outputs.trees:
        try:
            found = read_here(frontend, blobs + tree.hash)
        except Unchecked:
            continue  # stored: too large to read for its files
        if found is None:
            trees.append(tree)
        elif len(found[0]) != tree.size:
            return blobs + tree.hash
        else:
            needed += PARSED.tree(*found)
    absent = not_here(frontend, blobs, needed)
    if not absent and not trees:
        return None
    if frontend.readthrough is None:
        return blobs + trees[0].hash if trees else absent[0]
    return Elsewhere(absent, trees)


async def ask_store(frontend: Dependencies, blobs: str, elsewhere: Elsewhere) -> str | None:
    """The key of a blob in ``elsewhere`` the object store does not have either, or None."""
    tier = frontend.readthrough
    assert tier is not None
    asked = list(elsewhere.blobs)
    for tree in elsewhere.trees:
        try:
            found = await read_through(frontend, blobs + tree.hash)
        except Unchecked:
            continue
        if found is None or len(found[0]) != tree.size:
            return blobs + tree.hash
        asked += not_here(frontend, blobs, PARSED.tree(*found))
    found = await asyncio.gather(*(tier.head(key) for key in asked))
    return next((key for key, meta in zip(asked, found, strict=True) if meta is None), None)


def not_here(frontend: Dependencies, blobs: str, digests: list[Digest]) -> list[str]:
    """The keys of the blobs ``digests`` name that are not on this disk (the empty blob
    needs no storage): one ``stat`` each."""
    layout = frontend.layout
    keys = dict.fromkeys(blobs + digest.hash for digest in digests if digest.size)
    return [key for key in keys if not is_stored(layout, key)]


def read_here(frontend: Dependencies, key: str) -> tuple[bytes, str] | None:
    """The data and sha256 of ``key``'s object on this disk (an ActionResult, a Tree);
    None when it is absent or unreadable (a read of it finds and drops a corrupt file);
    ``Unchecked`` when it is over ``MAX_MESSAGE`` bytes."""
    try:
        opened = open_to_read(frontend.layout, key, READ_WHOLE)
    except (OSError, CorruptObject):
        return None
    if opened is None:
        return None
    fd, meta, _, data = opened
    try:
        if data is not None:
            return bytes(data), meta.sha256
        if meta.size > MAX_MESSAGE:
            raise Unchecked(key)
        return b"".join(read_data(fd, 0, meta.size, MAX_MESSAGE)), meta.sha256
    finally:
        os.close(fd)


async def read_through(frontend: Dependencies, key: str) -> tuple[bytes, str] | None:
    """``read_here``, else the object fetched from the object store (which keeps it here)."""
    found = read_here(frontend, key)
    tier = frontend.readthrough
    if found is not None or tier is None:
        return found
    from packrat.objectstore.readthrough import LOCAL, FetchFailed  # only then: boto3

    fetched = await tier.fetch(key)
    if fetched is None:
        return None
    if fetched == LOCAL:
        return read_here(frontend, key)
    if fetched.meta.size > MAX_MESSAGE:
        raise Unchecked(key)
    try:
        data = b"".join([chunk async for chunk in fetched.read(0, fetched.meta.size)])
    except FetchFailed:
        return None
    return data, fetched.meta.sha256


def _blake3(staged: StagedFile) -> str:
    hasher = blake3.blake3()
    for chunk in staged.data():
        hasher.update(chunk)
    return hasher.hexdigest()
