"""Compare Packrat's policies with libCacheSim on the real traces; write docs/policies.md.

Usage: ``python bench/policies.py [--traces DIR] [--out docs]`` (part of
``make bench``; needs the bench extras: libcachesim, matplotlib).  Every
(trace, size) cell is replayed by ``packrat simulate``'s code and by
libCacheSim on the very same requests, at 16 cache sizes spaced evenly on a
log scale from 0.5 % to 50 % of the trace's unique bytes.

libCacheSim runs in subprocesses with a timeout (some of its policies hang on
some traces).  Its results are kept in ``bench/policies_reference.json``,
keyed by a digest of the requests, the algorithm and the cache size, so a
rerun only replays Packrat's own policies; delete the file to rerun
libCacheSim too.  Both sides run on at most two processes.

Our policies run with ``admission="all"`` (what the server does: every object
that fits is stored); those that may refuse objects (``Policy.admits``) also
run with ``admission="policy"`` (libCacheSim's semantics).  The default is
judged on "all".
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from packrat.policies import POLICIES, Policy
from packrat.simulator import reference
from packrat.simulator.replay import Result, replay
from packrat.simulator.traces import Request, read_trace, unique_bytes

ROOT = Path(__file__).resolve().parents[1]
TRACES = {
    "NASA": "nasa_19950801.tsv",
    "web client": "request.trace.xz",
    "cloudPhysics": "cloudPhysicsIO.oracleGeneral.bin",
}
FRACTIONS = tuple(0.005 * 100 ** (i / 15) for i in range(16))
"""0.5 % to 50 % of the unique bytes, evenly spaced on a log scale."""
DEFAULT = "s3gdsf"
GOAL = (0.03, 0.01)
"""The default may be this far (object, byte) above libCacheSim's best miss ratio."""
TIMEOUT = 30.0
WORKERS = 2
CACHE = ROOT / "bench" / "policies_reference.json"

Pair = tuple[float, float]  # (object miss ratio, byte miss ratio)


def percent(fraction: float) -> str:
    """A size label: ``0.5 %``, ``2.33 %``, ``50 %``."""
    return f"{fraction * 100:.3g} %"


def refusers() -> list[str]:
    """Our policies that may refuse objects, so ``admission="policy"`` differs for them."""
    return [name for name, cls in POLICIES.items() if cls.admits is not Policy.admits]


# -- libCacheSim, cached --------------------------------------------------------------


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_cache() -> dict[str, Pair | None]:
    if not CACHE.exists():
        return {}
    stored = json.loads(CACHE.read_text())
    if stored.get("libcachesim") != "0.3.5" or stored.get("timeout") != TIMEOUT:
        return {}
    return {key: tuple(pair) if pair else None for key, pair in stored["runs"].items()}


def save_cache(runs: dict[str, Pair | None]) -> None:
    data = {"libcachesim": "0.3.5", "timeout": TIMEOUT, "runs": dict(sorted(runs.items()))}
    CACHE.write_text(json.dumps(data, indent=0) + "\n")


def theirs(traces: dict[str, list[Request]], pool: ProcessPoolExecutor) -> dict:
    """{(trace, algorithm, fraction): pair or None (timeout)}, from the cache when there."""
    runs = load_cache()
    work = Path(tempfile.mkdtemp())
    pending, keys = {}, {}
    for label, requests in traces.items():
        path = work / f"{len(keys)}.oracleGeneral.bin"
        reference.write_oracle_general(requests, path)
        total, tag = unique_bytes(requests), digest(path)
        for algorithm in reference.ALGORITHMS:
            for f in FRACTIONS:
                key = f"{tag} {algorithm} {int(total * f)}"
                keys[(label, algorithm, f)] = key
                if key not in runs and key not in pending:
                    pending[key] = pool.submit(
                        reference.run, path, algorithm, int(total * f), TIMEOUT
                    )
    if pending:
        print(f"libCacheSim: {len(pending)} runs not cached, running them", flush=True)
        runs.update({key: future.result() for key, future in pending.items()})
        save_cache(runs)
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    return {cell: runs[key] for cell, key in keys.items()}


# -- ours, on two processes -------------------------------------------------------------

_traces: dict[str, list[Request]] = {}


def _load(folder: Path) -> None:
    for label, name in TRACES.items():
        _traces[label] = read_trace(folder / name)


def _replay(label: str, name: str, fraction: float, admission: str) -> Result:
    requests = _traces[label]
    return replay(requests, name, int(unique_bytes(requests) * fraction), admission=admission)


def ours(pool: ProcessPoolExecutor) -> dict:
    """{(trace, policy, fraction, admission): Result} for every policy at every size."""
    jobs = [
        (label, name, f, admission)
        for label in TRACES
        for name in POLICIES
        for admission in ("all", "policy")
        if admission == "all" or name in refusers()
        for f in FRACTIONS
    ]
    futures = {job: pool.submit(_replay, *job) for job in jobs}
    return {job: future.result() for job, future in futures.items()}


# -- an offline reference for the cells missed ------------------------------------------


def clairvoyant(requests: list[Request], capacity: int, store_all: bool) -> Pair:
    """Miss ratios of a policy that knows the future: it evicts the cached object
    with the largest size x time to its next request (Belady's rule weighed by
    size, a strong offline heuristic, not a proven optimum).  ``store_all``:
    every object that fits is stored, as the server must; otherwise the
    newcomer competes too and may be the one dropped (libCacheSim's GDSF and
    S3-FIFO refuse objects that way).
    """
    last: dict[object, int] = {}
    next_use = [0] * len(requests)
    for i in range(len(requests) - 1, -1, -1):
        next_use[i] = last.get(requests[i][0], 1 << 40)
        last[requests[i][0]] = i
    cached: dict[object, int] = {}  # key -> its next request, to skip stale heap entries
    sizes: dict[object, int] = {}
    heap: list[tuple[int, int, object]] = []
    used = misses = missed = total = 0

    def evict_while(over: int) -> None:
        nonlocal used
        while used > over:
            _, nxt, key = heapq.heappop(heap)
            if cached.get(key) == nxt:
                del cached[key]
                used -= sizes.pop(key)

    for i, (key, size) in enumerate(requests):
        total += size
        if key not in cached:
            misses += 1
            missed += size
            if size > capacity:
                continue
            if store_all:
                evict_while(capacity - size)
            used += size
            sizes[key] = size
        cached[key] = next_use[i]
        heapq.heappush(heap, (-(next_use[i] - i) * size, next_use[i], key))
        evict_while(capacity)
    return misses / len(requests), missed / total


# -- the report --------------------------------------------------------------------------


def best(ref: dict, label: str, f: float, metric: int) -> tuple[str, float]:
    """libCacheSim's best (algorithm, miss ratio) at one cell for metric 0 (object) or 1."""
    done = {a: ref[(label, a, f)] for a in reference.ALGORITHMS if ref[(label, a, f)]}
    name = min(done, key=lambda a: done[a][metric])
    return name, done[name][metric]


def distances(mine: dict, ref: dict, label: str, f: float) -> tuple[float, float]:
    """How far (object, byte) the default is above libCacheSim's best, in ratio units."""
    result: Result = mine[(label, DEFAULT, f, "all")]
    return (
        result.object_miss_ratio - best(ref, label, f, 0)[1],
        result.byte_miss_ratio - best(ref, label, f, 1)[1],
    )


def met(distance: tuple[float, float]) -> bool:
    return all(d <= goal + 1e-12 for d, goal in zip(distance, GOAL, strict=True))


def goal_table(mine: dict, ref: dict, label: str) -> list[str]:
    rows = [
        f"| size | best object (libCacheSim) | best byte (libCacheSim) | {DEFAULT} object / byte "
        "| object distance | byte distance | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in FRACTIONS:
        bo, bb = best(ref, label, f, 0), best(ref, label, f, 1)
        result: Result = mine[(label, DEFAULT, f, "all")]
        do, db = distances(mine, ref, label, f)
        rows.append(
            f"| {percent(f)} | {bo[1]:.3f} ({bo[0]}) | {bb[1]:.3f} ({bb[0]}) "
            f"| {result.object_miss_ratio:.3f} / {result.byte_miss_ratio:.3f} "
            f"| {do * 100:+.2f} | {db * 100:+.2f} | {'yes' if met((do, db)) else '**no**'} |"
        )
    return rows


def policy_table(mine: dict, ref: dict, label: str, metric: int) -> list[str]:
    """One metric for every policy (ours with admission all, then libCacheSim's) and size."""
    columns = [(name, "all") for name in POLICIES] + [(name, "policy") for name in refusers()]
    head = [name if adm == "all" else f"{name} (policy)" for name, adm in columns]
    head += [f"lcs {a}" for a in reference.ALGORITHMS]
    rows = ["| size | " + " | ".join(head) + " |", "|---" * (1 + len(head)) + "|"]
    for f in FRACTIONS:
        cells = []
        for name, admission in columns:
            r: Result = mine[(label, name, f, admission)]
            cells.append(f"{(r.object_miss_ratio, r.byte_miss_ratio)[metric]:.3f}")
        for a in reference.ALGORITHMS:
            pair = ref[(label, a, f)]
            cells.append("timeout" if pair is None else f"{pair[metric]:.3f}")
        rows.append(f"| {percent(f)} | " + " | ".join(cells) + " |")
    return rows


def crosscheck_rows(mine: dict, ref: dict) -> list[str]:
    """Ours (with libCacheSim's admission) against libCacheSim's same-named policy."""
    rows = [
        "| policy | largest difference, object (cell) | largest difference, byte (cell) "
        "| libCacheSim timeouts |",
        "|---|---|---|---|",
    ]
    for name in (n for n in POLICIES if n in reference.ALGORITHMS):
        admission = "policy" if name in refusers() else "all"
        diffs: list[tuple[float, float, str]] = []
        timeouts = 0
        for label in TRACES:
            for f in FRACTIONS:
                theirs_ = ref[(label, name, f)]
                if theirs_ is None:
                    timeouts += 1
                    continue
                r: Result = mine[(label, name, f, admission)]
                diffs.append(
                    (
                        r.object_miss_ratio - theirs_[0],
                        r.byte_miss_ratio - theirs_[1],
                        f"{label} {percent(f)}",
                    )
                )
        cells = []
        for metric in (0, 1):
            worst = max(diffs, key=lambda d: abs(d[metric]))
            cells.append(f"{worst[metric] * 100:+.2f} ({worst[2]})")
        rows.append(f"| {name} | {cells[0]} | {cells[1]} | {timeouts} |")
    return rows


def speed_rows(mine: dict) -> list[str]:
    rows = ["| policy | " + " | ".join(TRACES) + " |", "|---" * (1 + len(TRACES)) + "|"]
    for name in POLICIES:
        rates = [
            sorted(mine[(label, name, f, "all")].requests_per_second for f in FRACTIONS)[
                len(FRACTIONS) // 2
            ]
            for label in TRACES
        ]
        rows.append(f"| {name} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")
    return rows


def draw_curves(mine: dict, ref: dict, path: Path) -> None:
    """Miss ratio against size: ours (admission all) solid, libCacheSim dotted."""
    import matplotlib.pyplot as plt

    xs = [f * 100 for f in FRACTIONS]
    fig, axes = plt.subplots(len(TRACES), 2, figsize=(11, 3.4 * len(TRACES)), squeeze=False)
    for row, label in enumerate(TRACES):
        for col, metric in enumerate(("object", "byte")):
            ax = axes[row][col]
            for name in POLICIES:
                ys = [
                    (lambda r: (r.object_miss_ratio, r.byte_miss_ratio))(
                        mine[(label, name, f, "all")]
                    )[col]
                    for f in FRACTIONS
                ]
                width = 2.5 if name == DEFAULT else 1.2
                (line,) = ax.plot(xs, ys, marker=".", lw=width, label=name)
                theirs_ = [ref.get((label, name, f)) for f in FRACTIONS]
                if name in reference.ALGORITHMS and all(theirs_):
                    ax.plot(xs, [r[col] for r in theirs_], ls=":", color=line.get_color())
            for a in ("arc", "lhd", "wtinylfu"):
                pts = [(x, ref[(label, a, f)]) for x, f in zip(xs, FRACTIONS, strict=True)]
                pts = [(x, p[col]) for x, p in pts if p]
                ax.plot(*zip(*pts, strict=True), ls=":", lw=1.2, label=f"lcs {a}")
            ax.set_xscale("log")
            ax.set_title(
                f"{label}: {metric} miss ratio (ours: admission all; dotted: libCacheSim)",
                fontsize="medium",
            )
            ax.set_xlabel("cache size, % of unique bytes")
            ax.grid(True, alpha=0.3)
    axes[0][1].legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_goal(mine: dict, ref: dict, path: Path) -> None:
    """The default's distance to libCacheSim's best, per trace, against the goal lines."""
    import matplotlib.pyplot as plt

    xs = [f * 100 for f in FRACTIONS]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for col, metric in enumerate(("object", "byte")):
        ax = axes[col]
        for label in TRACES:
            ys = [distances(mine, ref, label, f)[col] * 100 for f in FRACTIONS]
            ax.plot(xs, ys, marker="o", label=label)
        ax.axhline(GOAL[col] * 100, color="red", ls="--", lw=1, label="goal")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xscale("log")
        ax.set_title(
            f"{DEFAULT} {metric} miss ratio minus libCacheSim's best (points)", fontsize="medium"
        )
        ax.set_xlabel("cache size, % of unique bytes")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(mine: dict, ref: dict, traces: dict, seconds: float) -> list[str]:
    cells = [(label, f) for label in TRACES for f in FRACTIONS]
    dist = {cell: distances(mine, ref, *cell) for cell in cells}
    missed = [cell for cell in cells if not met(dist[cell])]
    worst_o = max(cells, key=lambda c: dist[c][0])
    worst_b = max(cells, key=lambda c: dist[c][1])
    over = sum(max(d - g, 0) for cell in cells for d, g in zip(dist[cell], GOAL, strict=True))
    text = [
        "## The default against libCacheSim's best",
        "",
        f"`{DEFAULT}` with admission *all* (the server's behaviour) against the best of "
        f"libCacheSim's {len(reference.ALGORITHMS)} policies (each with its own admission) "
        f"at each cell. Goal: at most {GOAL[0] * 100:.0f} points above the best object miss "
        f"ratio and {GOAL[1] * 100:.0f} point above the best byte miss ratio. "
        f"**Met on {len(cells) - len(missed)} of {len(cells)} cells.** Largest distances: "
        f"object {dist[worst_o][0] * 100:+.1f} points ({worst_o[0]} {percent(worst_o[1])}), "
        f"byte {dist[worst_b][1] * 100:+.1f} points ({worst_b[0]} {percent(worst_b[1])}). "
        f"Points over the goal, summed over the cells: {over * 100:.1f}.",
        "",
    ]
    if missed:
        text += [
            "The cells missed, with the offline reference (`clairvoyant` in "
            "`bench/policies.py`: it knows every future request and evicts the cached "
            "object with the largest size x time to its next request) storing every "
            "object like the server, and free to drop the newcomer as libCacheSim's "
            "GDSF and S3-FIFO do. Where the first is above the goal no online policy "
            "that stores every upload can be expected to meet it.",
            "",
            f"| cell | {DEFAULT} distance (object / byte) | goal: at most (object / byte) "
            "| clairvoyant, stores all | clairvoyant, may refuse |",
            "|---|---|---|---|---|",
        ]
        for label, f in missed:
            capacity = int(unique_bytes(traces[label]) * f)
            allowed = [best(ref, label, f, m)[1] + GOAL[m] for m in (0, 1)]
            forced = clairvoyant(traces[label], capacity, store_all=True)
            free = clairvoyant(traces[label], capacity, store_all=False)
            text.append(
                f"| {label} {percent(f)} | {dist[(label, f)][0] * 100:+.2f} / "
                f"{dist[(label, f)][1] * 100:+.2f} | {allowed[0]:.3f} / {allowed[1]:.3f} "
                f"| {forced[0]:.3f} / {forced[1]:.3f} | {free[0]:.3f} / {free[1]:.3f} |"
            )
        text.append("")
    text += ["![distance to libCacheSim's best](policies_goal.png)", ""]
    for label in TRACES:
        text += [f"### {label}", "", *goal_table(mine, ref, label), ""]
    text += [
        "## Our policies against libCacheSim's",
        "",
        "Largest difference in points (ours minus libCacheSim) over the cells where "
        "libCacheSim answered, ours with libCacheSim's admission (*policy* for the "
        "policies that may refuse objects):",
        "",
        *crosscheck_rows(mine, ref),
        "",
        "## Every policy at every size",
        "",
        "Ours with admission *all*; *(policy)*: ours, letting the policy refuse objects "
        "(libCacheSim's semantics); *lcs*: libCacheSim 0.3.5 (`timeout`: no answer within "
        f"{TIMEOUT:.0f} s).",
        "",
        "![miss ratio against cache size](policies.png)",
        "",
    ]
    for label in TRACES:
        for metric, name in enumerate(("object", "byte")):
            text += [f"### {label}: {name} miss ratio", "", *policy_table(mine, ref, label, metric)]
            text += [""]
    text += [
        "## Speed",
        "",
        "Requests replayed per second (median over the 16 sizes, admission all), "
        f"{WORKERS} processes sharing the machine (1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end: other work slows every row alike), "
        "`python bench/policies.py`:",
        "",
        *speed_rows(mine),
        "",
        f"This run took {seconds:.0f} s.",
        "",
    ]
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    start = time.time()
    traces = {label: read_trace(args.traces / name) for label, name in TRACES.items()}
    with ProcessPoolExecutor(WORKERS, initializer=_load, initargs=(args.traces,)) as pool:
        ref = theirs(traces, pool)
        mine = ours(pool)
    import matplotlib

    matplotlib.use("Agg")
    draw_curves(mine, ref, args.out / "policies.png")
    draw_goal(mine, ref, args.out / "policies_goal.png")
    text = [(ROOT / "bench" / "policies_intro.md").read_text().rstrip(), ""]
    text += report(mine, ref, traces, time.time() - start)
    (args.out / "policies.md").write_text("\n".join(text))
    print(f"wrote {args.out / 'policies.md'} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
