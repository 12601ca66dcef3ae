"""Uploads and downloads stream: a front end's memory stays flat whatever the size."""

from __future__ import annotations

import hashlib

import requests

MiB = 1 << 20
UPLOAD = 384 * MiB
BLOCK = bytes(range(256)) * 4096  # 1 MiB of a known pattern


def vm_hwm(pid: int) -> int:
    """Peak resident set size of ``pid`` in bytes (VmHWM in /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


class PatternBody:
    """A file-like request body of ``blocks`` MiB generated on the fly.

    It has a length, so requests sends a Content-Length and streams ``read()``.
    """

    def __init__(self, head: bytes, blocks: int, tail: bytes) -> None:
        self.parts = [head, *([BLOCK] * blocks), tail]
        self.length = sum(map(len, self.parts))

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        return self.parts.pop(0) if self.parts else b""


def test_large_upload_and_download_keep_front_end_memory_bounded(make_server):
    server = make_server(frontend={"processes": 1}, cache={"max_size": "1G"})
    (frontend,) = server.children("frontend")
    before = vm_hwm(frontend.pid)

    boundary = "streamtest"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    body = PatternBody(head, UPLOAD // MiB, tail)

    expected = hashlib.sha256()
    for _ in range(UPLOAD // MiB):
        expected.update(BLOCK)
    reply = requests.post(
        f"{server.url}/big",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=300,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["sha256"] == expected.hexdigest()
    after_upload = vm_hwm(frontend.pid)

    got = hashlib.sha256()
    received = 0
    with requests.get(f"{server.url}/big", stream=True, timeout=300) as download:
        assert download.status_code == 200
        for chunk in download.iter_content(MiB):
            got.update(chunk)
            received += len(chunk)
    assert received == UPLOAD
    assert got.hexdigest() == expected.hexdigest()
    after_download = vm_hwm(frontend.pid)

    assert after_upload - before < 64 * MiB, (before, after_upload)
    assert after_download - before < 64 * MiB, (before, after_download)
