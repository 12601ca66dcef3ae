"""Object-store benchmarks against a real SeaweedFS on loopback.

Run: ``python bench/objectstore.py`` (both parts, about two minutes on 2
cores), ``--part clients`` or ``--part reads`` for one.  It starts its own
SeaweedFS (``bench/seaweedfs.py``) and, for ``reads``, its own ``packrat
serve``, in a temporary directory, and stops them by pid before it returns.

``clients``: which S3 client library Packrat uses.  The same objects (random
bytes) are written and then read back by each candidate at the same
concurrency, and each run reports MB/s (10^6 bytes) and the client's own CPU
time per MB (user plus system of this process, every thread included: the
Rust runtime of obstore as much as boto3's thread pool), beside the store's
CPU per MB (``weed``), which does the same work for every client:

* boto3: blocking calls, ``concurrency`` threads;
* aiobotocore: the same botocore on aiohttp, ``concurrency`` tasks;
* obstore: Rust's object_store through pyo3, ``concurrency`` tasks.

Reads stream the body in chunks, as the read-through does, and writes send
bytes already in memory.

``reads``: a ``GET`` through Packrat of an object that is only in the store
(the read-through: fetched, verified, streamed to the client while it is
staged, committed), beside a ``GET`` of the same object once it is local (a
hit), beside a direct download from the store with boto3.  It reports the
median first-byte latency and MB/s of each, over ``--repeat`` objects per
size, each object fresh in the store for the read-through.

Results are printed as Markdown tables (docs/objectstore.md quotes them) and,
with ``--json FILE``, written for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# bench/ is not installed, and bench/http.py would shadow the standard library's http.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.procstat import read_stat  # noqa: E402
from bench.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS  # noqa: E402

MB = 1_000_000
CHUNK = 256 * 1024  # bytes per read of a streamed body
CLIENT_SIZES = ((1 << 20, 48), (32 << 20, 6))  # (object size, objects) per run
READ_SIZES = (64 << 10, 1 << 20, 32 << 20)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Run:
    """One measured run: wall time, this process's CPU and the store's."""

    def __init__(self, store_pid: int) -> None:
        self.store_pid = store_pid

    def __enter__(self) -> Run:
        self.wall = time.perf_counter()
        self.cpu = cpu_seconds()
        self.store_cpu = _store_cpu(self.store_pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = cpu_seconds() - self.cpu
        self.store_cpu = _store_cpu(self.store_pid) - self.store_cpu


def _store_cpu(pid: int) -> float:
    stat = read_stat(pid)
    return stat[1] if stat else 0.0


# -- the candidates ---------------------------------------------------------


def boto3_client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
    )


def run_boto3(endpoint: str, bucket: str, objects: dict[str, bytes], concurrency: int, op: str):
    client = boto3_client(endpoint)

    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=objects[key])

    def get(key: str) -> None:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        size = sum(len(chunk) for chunk in body.iter_chunks(CHUNK))
        assert size == len(objects[key])

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(put if op == "put" else get, objects))


def run_aiobotocore(
    endpoint: str, bucket: str, objects: dict[str, bytes], concurrency: int, op: str
):
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    async def main() -> None:
        session = get_session()
        config = AioConfig(s3={"addressing_style": "path"}, max_pool_connections=16)
        async with session.create_client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=config,
        ) as client:
            limit = asyncio.Semaphore(concurrency)

            async def one(key: str) -> None:
                async with limit:
                    if op == "put":
                        await client.put_object(Bucket=bucket, Key=key, Body=objects[key])
                        return
                    reply = await client.get_object(Bucket=bucket, Key=key)
                    size = 0
                    async with reply["Body"] as body:
                        while chunk := await body.read(CHUNK):
                            size += len(chunk)
                    assert size == len(objects[key])

            await asyncio.gather(*(one(key) for key in objects))

    asyncio.run(main())


def run_obstore(endpoint: str, bucket: str, objects: dict[str, bytes], concurrency: int, op: str):
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )

    async def main() -> None:
        limit = asyncio.Semaphore(concurrency)

        async def one(key: str) -> None:
            async with limit:
                if op == "put":
                    await obstore.put_async(store, key, objects[key])
                    return
                reply = await obstore.get_async(store, key)
                size = 0
                async for chunk in reply.stream(min_chunk_size=CHUNK):
                    size += len(chunk)
                assert size == len(objects[key])

        await asyncio.gather(*(one(key) for key in objects))

    asyncio.run(main())


CLIENTS: dict[str, Callable[..., None]] = {
    "boto3": run_boto3,
    "aiobotocore": run_aiobotocore,
    "obstore": run_obstore,
}


def bench_clients(store: SeaweedFS, concurrency: int, rounds: int) -> list[dict[str, object]]:
    """Every client writes then reads the same objects; the median of ``rounds`` runs."""
    store.create_bucket("clients")
    rows = []
    for size, count in CLIENT_SIZES:
        payload = {f"o{n}": secrets.token_bytes(size) for n in range(count)}
        for name, run in CLIENTS.items():
            for op in ("put", "get"):
                runs = []
                run(store.endpoint, "clients", payload, concurrency, op)  # warm-up
                for _ in range(rounds):
                    with Run(store.pid) as measured:
                        run(store.endpoint, "clients", payload, concurrency, op)
                    runs.append(measured)
                total = size * count / MB
                wall = statistics.median(r.wall for r in runs)
                rows.append(
                    {
                        "client": name,
                        "op": op,
                        "size": size,
                        "objects": count,
                        "mb_per_s": round(total / wall, 1),
                        "client_cpu_ms_per_mb": round(
                            statistics.median(r.cpu for r in runs) / total * 1000, 2
                        ),
                        "store_cpu_ms_per_mb": round(
                            statistics.median(r.store_cpu for r in runs) / total * 1000, 2
                        ),
                    }
                )
                print(rows[-1], flush=True)
    return rows


def clients_table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| client | op | object | MB/s | client CPU ms/MB | store CPU ms/MB |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        size = int(row["size"])  # type: ignore[arg-type]
        lines.append(
            f"| {row['client']} | {row['op']} | {size >> 20} MiB x {row['objects']} | "
            f"{row['mb_per_s']} | {row['client_cpu_ms_per_mb']} | {row['store_cpu_ms_per_mb']} |"
        )
    return "\n".join(lines)


# -- reads through Packrat -------------------------------------------------------


def _timed_get(connection, path: str) -> tuple[float, float, int]:
    """(seconds to the first body byte, seconds to the last, bytes) of one ``GET``."""
    started = time.perf_counter()
    connection.request("GET", path)
    reply = connection.getresponse()
    assert reply.status == 200, reply.status
    first = reply.read(1)
    first_byte = time.perf_counter() - started
    size = len(first)
    while chunk := reply.read(CHUNK):
        size += len(chunk)
    return first_byte, time.perf_counter() - started, size


def _timed_direct(client, bucket: str, key: str) -> tuple[float, float, int]:
    started = time.perf_counter()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    first = body.read(1)
    first_byte = time.perf_counter() - started
    size = len(first)
    while chunk := body.read(CHUNK):
        size += len(chunk)
    return first_byte, time.perf_counter() - started, size


def bench_reads(store: SeaweedFS, tmp: Path, repeat: int) -> list[dict[str, object]]:
    """Read-through, local hit and a direct boto3 download of the same objects."""
    import hashlib
    import http.client
    import subprocess

    import requests

    bucket = store.create_bucket("reads")
    root = tmp / "packrat"
    root.mkdir()
    credentials = tmp / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = root / "packrat.ini"
    config.write_text(
        f"[server]\nport = {port}\n[frontend]\nprocesses = 2\n"
        f"[cache]\nroot = {root}/cache\nmax_size = 2G\n"
        f"[coordinator]\nendpoint = ipc://{root}/run/coordinator.sock\n"
        f"[metrics]\ndirectory = {root}/run/metrics\n"
        f"[log]\naccess = off\n"
        f"[objectstore]\nbucket = {bucket}\nendpoint_url = {store.endpoint}\n"
        f"addressing_style = path\ncredentials_file = {credentials}\n"
        f"uploader_endpoint = ipc://{root}/run/uploader.sock\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "packrat", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = boto3_client(store.endpoint)
    rows = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("packrat serve did not start")
            time.sleep(0.1)
        for size in READ_SIZES:
            timings: dict[str, list[tuple[float, float, int]]] = {
                "read-through": [],
                "local hit": [],
                "direct boto3": [],
            }
            for n in range(repeat + 1):  # the first of each is a warm-up, dropped
                key = f"r{size}-{n}"
                data = secrets.token_bytes(size)
                client.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=data,
                    Metadata={
                        "packrat-sha256": hashlib.sha256(data).hexdigest(),
                        "packrat-version": str(time.time_ns()),
                        "packrat-stored-at": repr(time.time()),
                        "packrat-filename": key,
                    },
                )
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                direct = _timed_direct(client, bucket, key)
                through = _timed_get(connection, f"/{key}")
                time.sleep(0.2)  # the commit
                hit = _timed_get(connection, f"/{key}")
                connection.close()
                if n:
                    timings["direct boto3"].append(direct)
                    timings["read-through"].append(through)
                    timings["local hit"].append(hit)
            for name, runs in timings.items():
                first = statistics.median(r[0] for r in runs)
                total = statistics.median(r[1] for r in runs)
                rows.append(
                    {
                        "size": size,
                        "path": name,
                        "first_byte_ms": round(first * 1000, 2),
                        "total_ms": round(total * 1000, 2),
                        "mb_per_s": round(size / MB / total, 1),
                    }
                )
                print(rows[-1], flush=True)
    finally:
        server.terminate()
        server.wait(20)
    return rows


def reads_table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| object | path | first byte (ms, median) | whole (ms, median) | MB/s |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        size = int(row["size"])  # type: ignore[arg-type]
        shown = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
        lines.append(
            f"| {shown} | {row['path']} | {row['first_byte_ms']} | {row['total_ms']} | "
            f"{row['mb_per_s']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("clients", "reads", "all"), default="all")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="objects per size (reads)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    results: dict[str, object] = {"load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="packrat-bench-s3-") as tmp:
        store = SeaweedFS(Path(tmp) / "seaweedfs")
        try:
            store.wait_ready()
            if args.part in ("clients", "all"):
                rows = bench_clients(store, args.concurrency, args.rounds)
                results["clients"] = rows
                print(clients_table(rows))
            if args.part in ("reads", "all"):
                rows = bench_reads(store, Path(tmp), args.repeat)
                results["reads"] = rows
                print(reads_table(rows))
        finally:
            store.stop()
    results["load_after"] = os.getloadavg()
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
