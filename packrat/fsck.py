"""``packrat fsck [--repair]``: check every object against its digest and the index.

Problems found:

* ``corrupt``: the trailer is unreadable, the file name is not the hash of the
  key it holds, or the data does not match its sha256;
* ``missing``: the index snapshot lists a key whose file is gone;
* ``unindexed``: an object the snapshot does not know (the coordinator adopts
  it at its next start; only reported);
* ``staging``: leftover staging files whose writer is no longer running.

``--repair`` removes corrupt objects (through the coordinator when it runs,
so its index stays exact) and dead staging files.  Exit status: 0 when clean
(or everything found was repaired), 1 when problems remain.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zmq

from packrat import protocol
from packrat.config import Settings
from packrat.coordinator.recovery import load_snapshot, sweep_staging
from packrat.storage import CorruptObject, Layout, key_digest, read_data, read_trailer

READ_CHUNK = 1 << 20
COORDINATOR_TIMEOUT_MS = 2000


@dataclass
class Finding:
    kind: str  # corrupt, missing, unindexed, staging
    path: Path
    detail: str
    key: str | None = None
    sha256: str | None = None


def check_object(path: Path) -> Finding | None:
    """Verify one object file: trailer, name and digest."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None  # evicted while we looked
    try:
        meta = read_trailer(fd, os.fstat(fd).st_size)
        if key_digest(meta.key) != path.name:
            return Finding("corrupt", path, "file name is not the hash of its key", meta.key)
        digest = hashlib.sha256()
        for chunk in read_data(fd, 0, meta.size, READ_CHUNK):
            digest.update(chunk)
        if digest.hexdigest() != meta.sha256:
            return Finding("corrupt", path, "data does not match its sha256", meta.key, meta.sha256)
    except CorruptObject as e:
        return Finding("corrupt", path, str(e))
    finally:
        os.close(fd)
    return None


def scan(layout: Layout) -> Iterator[Finding]:
    snapshot = {digest.hex(): key for key, _, _, digest in load_snapshot(layout).entries}
    for entry in layout.iter_objects():
        path = Path(entry.path)
        finding = check_object(path)
        known = snapshot.pop(entry.name, None)
        if finding is not None:
            if finding.key is None:
                finding.key = known  # unreadable trailer: the snapshot knows the key
            yield finding
        elif known is None:
            yield Finding("unindexed", path, "not in the index snapshot (adopted at next start)")
    for digest, key in snapshot.items():
        path = layout.objects / digest[:2] / digest[2:4] / digest
        yield Finding(
            "missing",
            path,
            "in the last index snapshot, file is gone (evicted since, or lost)",
            key,
        )
    for path in sorted(layout.staging.glob("*.part")):
        yield Finding("staging", path, "upload in progress or abandoned")


def run(settings: Settings, repair: bool, out=sys.stdout) -> int:
    layout = Layout(settings.cache_root)
    if not layout.objects.is_dir():
        print(f"packrat fsck: no cache at {layout.root}", file=sys.stderr)
        return 1
    started = time.monotonic()
    findings = list(scan(layout))
    checked = sum(1 for _ in layout.iter_objects())
    remaining = 0
    for finding in findings:
        repaired = False
        if repair and finding.kind == "corrupt":
            repaired = _drop(settings, finding)
        print(
            f"{finding.kind:9s} {finding.path}  {finding.detail}"
            + (f" (key {finding.key!r})" if finding.key else "")
            + ("  -> removed" if repaired else ""),
            file=out,
        )
        if finding.kind == "corrupt" and not repaired:
            remaining += 1
    if repair:
        swept = sweep_staging(layout, settings.coordinator_stale_staging)
        if swept:
            print(f"removed {swept} dead or stale staging files", file=out)
    corrupt = sum(f.kind == "corrupt" for f in findings)
    print(
        f"checked {checked} objects in {time.monotonic() - started:.1f}s: "
        f"{corrupt} corrupt, {sum(f.kind == 'missing' for f in findings)} missing, "
        f"{sum(f.kind == 'unindexed' for f in findings)} unindexed, "
        f"{sum(f.kind == 'staging' for f in findings)} staging",
        file=out,
    )
    return 1 if remaining else 0


def _drop(settings: Settings, finding: Finding) -> bool:
    """Remove a corrupt object: through the coordinator if it answers, else directly."""
    if finding.key is None or not _ask_coordinator(settings, finding):
        finding.path.unlink(missing_ok=True)
    return True


def _ask_coordinator(settings: Settings, finding: Finding) -> bool:
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    socket.immediate = True
    socket.sndtimeo = COORDINATOR_TIMEOUT_MS
    socket.rcvtimeo = COORDINATOR_TIMEOUT_MS
    try:
        socket.connect(settings.coordinator_endpoint)
        request = {
            "op": "delete",
            "id": 1,
            "key": finding.key,
            "reason": "corrupt",
            "sha256": finding.sha256,
            "deadline": time.time() + 5,
        }
        socket.send(protocol.encode(request))
        reply = protocol.decode(socket.recv())
        return bool(reply.get("ok")) or reply.get("error") == "not_found"
    except zmq.Again:
        return False
    finally:
        socket.close()
        context.term()
