"""rclone (Debian's) over Packrat's WebDAV, as its users would: the commands of issue 18.

A local tree goes up with ``copy``, is listed with ``lsf -R``, compared with
``check`` (sizes) and ``check --download`` (bytes), read with ``cat``, put
file by file with ``copyto``, removed with ``deletefile``, mirrored both ways
with ``sync`` and copied back into an empty directory; ``purge`` removes a
"directory".  Each step is checked in rclone's answer and in Packrat's own
state (its objects, its figures).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed")

TREE = {
    "a.txt": b"hello\n",
    "sub/b.txt": b"world\n",
    "sub/deeper/c.bin": os.urandom(300_000),
}


def write_tree(root: Path, tree: dict[str, bytes]) -> Path:
    for name, data in tree.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


class Rclone:
    """``rclone`` with the WebDAV remote ``:webdav:`` at ``url`` (no config file)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [
                "rclone",
                f"--webdav-url={self.url}",
                "--webdav-vendor=other",
                "--retries=1",
                "--low-level-retries=1",
                *args,
            ],
            env={**os.environ, "RCLONE_CONFIG": "/dev/null"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, done.stderr[-3000:]
        return done


def test_copy_list_check_cat_copyto_deletefile_sync_and_back(module_server, tmp_path):
    server = module_server
    rclone = Rclone(f"{server.url}/files")
    source = write_tree(tmp_path / "source", TREE)

    before = server.stats()
    rclone("copy", str(source), ":webdav:")
    assert server.stats()["commits"] - before["commits"] == len(TREE)
    for name, data in TREE.items():
        assert server.get(f"files/{name}").content == data

    listed = rclone("lsf", "-R", ":webdav:").stdout.splitlines()
    assert listed == ["a.txt", "sub/", "sub/b.txt", "sub/deeper/", "sub/deeper/c.bin"]
    sized = rclone("lsl", ":webdav:").stdout.split()
    assert sized[0] == str(len(TREE["a.txt"])) and "a.txt" in sized
    check = rclone("check", str(source), ":webdav:")
    assert "0 differences found" in check.stderr and "3 matching files" in check.stderr
    read_before = server.stats()
    check = rclone("check", "--download", str(source), ":webdav:")
    assert "0 differences found" in check.stderr
    assert server.stats_grown(read_before, hits=len(TREE))["hits"] >= len(TREE)

    assert rclone("cat", ":webdav:sub/b.txt").stdout == "world\n"
    rclone("copyto", str(source / "a.txt"), ":webdav:renamed/a2.txt")
    assert server.get("files/renamed/a2.txt").content == TREE["a.txt"]
    rclone("deletefile", ":webdav:renamed/a2.txt")
    assert not server.exists("files/renamed/a2.txt")
    missing = rclone("cat", ":webdav:renamed/a2.txt", ok=False)
    assert missing.returncode != 0 and "not found" in missing.stderr.lower()

    # sync up: a deleted local file goes, a new one comes; then down into an empty directory.
    (source / "sub/b.txt").unlink()
    (source / "new.txt").write_bytes(b"new\n")
    rclone("sync", str(source), ":webdav:")
    assert not server.exists("files/sub/b.txt")
    assert server.get("files/new.txt").content == b"new\n"
    back = tmp_path / "back"
    rclone("sync", ":webdav:", str(back))
    assert read_tree(back) == read_tree(source)
    copied = tmp_path / "copied"
    rclone("copy", ":webdav:sub", str(copied))
    assert read_tree(copied) == {"deeper/c.bin": TREE["sub/deeper/c.bin"]}

    rclone("purge", ":webdav:sub")
    assert not server.exists("files/sub/deeper/c.bin")
    assert rclone("lsf", "-R", ":webdav:").stdout.splitlines() == ["a.txt", "new.txt"]
