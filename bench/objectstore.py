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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("clients", "reads", "all"), default="all")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
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
        finally:
            store.stop()
    results["load_after"] = os.getloadavg()
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
