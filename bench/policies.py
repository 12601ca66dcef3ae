"""Compare Packrat's policies with libCacheSim on the real traces; write docs/policies.md.

Usage: ``python bench/policies.py [--traces DIR] [--out docs]`` (part of
``make bench``; needs the bench extras: libcachesim, matplotlib).  Every
(trace, policy, size) cell is replayed by ``packrat simulate``'s code and by
libCacheSim on the very same requests; libCacheSim runs in subprocesses with
a timeout because some of its policies hang on some traces.

Our policies run twice: with ``admission="all"`` (what the server does: every
object that fits is stored) and ``admission="policy"`` (the policy may refuse
objects, as libCacheSim's S3-FIFO does).  The default is judged on "all".
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packrat.policies import POLICIES
from packrat.simulator import reference
from packrat.simulator.replay import ADMISSIONS, Result, replay
from packrat.simulator.traces import read_trace, unique_bytes

ROOT = Path(__file__).resolve().parents[1]
TRACES = {
    "NASA": "nasa_19950801.tsv",
    "web client": "request.trace.xz",
    "cloudPhysics": "cloudPhysicsIO.oracleGeneral.bin",
}
FRACTIONS = (0.01, 0.05, 0.10, 0.25)
DEFAULT = "s3gdsf"
TIMEOUT = 30.0

Cell = tuple[str, float]  # (trace, fraction)
LEGEND = (
    "object miss / byte miss. *all*: ours, every object that fits is stored (the "
    "server's behaviour); *policy*: ours, the policy may refuse objects "
    "(libCacheSim's semantics); *libCacheSim*: libCacheSim 0.3.5."
)


def run_trace(label: str, path: Path, pool: ThreadPoolExecutor) -> tuple[dict, dict]:
    """Ours: {(policy, fraction, admission): Result}; theirs: {(policy, fraction): pair | None}."""
    requests = read_trace(path)
    total = unique_bytes(requests)
    bin_path = Path(tempfile.mkdtemp()) / "trace.oracleGeneral.bin"
    reference.write_oracle_general(requests, bin_path)
    futures = {
        (name, f): pool.submit(reference.run, bin_path, name, int(total * f), TIMEOUT)
        for f in FRACTIONS
        for name in reference.ALGORITHMS
    }
    theirs = {key: future.result() for key, future in futures.items()}  # before ours: speed
    ours = {
        (name, f, admission): replay(requests, name, int(total * f), admission=admission)
        for f in FRACTIONS
        for name in POLICIES
        for admission in ADMISSIONS
    }
    print(f"{label}: {len(requests):,} requests, {total:,} unique bytes", flush=True)
    return ours, theirs


def fmt(pair: tuple[float, float] | None) -> str:
    return "timeout" if pair is None else f"{pair[0]:.3f} / {pair[1]:.3f}"


def table(ours: dict, theirs: dict) -> list[str]:
    head = "| policy | " + " | ".join(
        f"{int(f * 100)} % all | {int(f * 100)} % policy | {int(f * 100)} % libCacheSim"
        for f in FRACTIONS
    )
    rows = [head + " |", "|---" * (1 + 3 * len(FRACTIONS)) + "|"]
    for name in list(POLICIES) + [n for n in reference.ALGORITHMS if n not in POLICIES]:
        cells = []
        for f in FRACTIONS:
            for admission in ADMISSIONS:
                mine = ours.get((name, f, admission))
                cells.append(fmt((mine.object_miss_ratio, mine.byte_miss_ratio)) if mine else "—")
            cells.append(fmt(theirs.get((name, f))) if name in reference.ALGORITHMS else "—")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def goal_rows(results: dict) -> tuple[list[str], bool]:
    """The default against libCacheSim's best: +1 point bytes, +3 points objects."""
    rows = [
        "| trace | size | best object (libCacheSim) | best byte (libCacheSim) "
        f"| {DEFAULT} object / byte (all) | met | {DEFAULT} (policy) |",
        "|---|---|---|---|---|---|---|",
    ]
    misses = []
    all_met = True
    for label, (ours, theirs) in results.items():
        for f in FRACTIONS:
            ref = {n: r for (n, g), r in theirs.items() if g == f and r is not None}
            bo = min(ref.items(), key=lambda kv: kv[1][0])
            bb = min(ref.items(), key=lambda kv: kv[1][1])
            mine: Result = ours[(DEFAULT, f, "all")]
            ref: Result = ours[(DEFAULT, f, "policy")]
            over_o = mine.object_miss_ratio - bo[1][0] - 0.03
            over_b = mine.byte_miss_ratio - bb[1][1] - 0.01
            met = over_o <= 0 and over_b <= 0
            all_met &= met
            if not met:
                what = [f"object by {over_o * 100:.1f}"] if over_o > 0 else []
                what += [f"byte by {over_b * 100:.1f}"] if over_b > 0 else []
                misses.append(f"{label} {int(f * 100)} %: {' and '.join(what)} points")
            verdict = "yes" if met else "**no**"
            rows.append(
                f"| {label} | {int(f * 100)} % | {bo[1][0]:.3f} ({bo[0]}) "
                f"| {bb[1][1]:.3f} ({bb[0]}) | {mine.object_miss_ratio:.3f} "
                f"/ {mine.byte_miss_ratio:.3f} | {verdict} "
                f"| {ref.object_miss_ratio:.3f} / {ref.byte_miss_ratio:.3f} |"
            )
    return rows, all_met, misses


def speed_rows(results: dict) -> list[str]:
    rows = ["| policy | " + " | ".join(results) + " |", "|---" * (1 + len(results)) + "|"]
    for name in POLICIES:
        rates = [
            min(ours[(name, f, "all")].requests_per_second for f in FRACTIONS)
            for ours, _ in results.values()
        ]
        rows.append(f"| {name} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")
    return rows


def draw(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 3.4 * len(results)), squeeze=False)
    for row, (label, (ours, theirs)) in enumerate(results.items()):
        for col, metric in enumerate(("object", "byte")):
            ax = axes[row][col]
            for name in POLICIES:
                ys = [
                    (
                        ours[(name, f, "all")].object_miss_ratio,
                        ours[(name, f, "all")].byte_miss_ratio,
                    )[col]
                    for f in FRACTIONS
                ]
                (line,) = ax.plot([f * 100 for f in FRACTIONS], ys, marker="o", label=name)
                ref = [theirs.get((name, f)) for f in FRACTIONS]
                if name in reference.ALGORITHMS and all(ref):
                    ax.plot(
                        [f * 100 for f in FRACTIONS],
                        [r[col] for r in ref],
                        ls=":",
                        color=line.get_color(),
                    )
            ax.set_xscale("log")
            ax.set_title(
                f"{label}: {metric} miss ratio (admission all; dotted: libCacheSim)",
                fontsize="medium",
            )
            ax.set_xlabel("cache size, % of unique bytes")
            ax.grid(True, alpha=0.3)
    axes[0][1].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    start = time.time()
    with ThreadPoolExecutor(2) as pool:
        results = {
            label: run_trace(label, args.traces / name, pool) for label, name in TRACES.items()
        }
    draw(results, args.out / "policies.png")
    goal, met, misses = goal_rows(results)
    text = [(ROOT / "bench" / "policies_intro.md").read_text().rstrip(), ""]
    for label, (ours, theirs) in results.items():
        text += [f"### {label}", "", LEGEND, "", *table(ours, theirs), ""]
    text += [
        "## The default against libCacheSim's best",
        "",
        f"Goal met on every cell: **{'yes' if met else 'no'}**. `{DEFAULT}` is judged "
        "with admission *all*, the server's behaviour; libCacheSim's best is over all "
        "its policies, with its own admission.",
        "",
        *(["Cells missed: " + "; ".join(misses) + ".", ""] if misses else []),
        *goal,
        "",
    ]
    text += [
        "## Speed",
        "",
        "Requests replayed per second (slowest of the four sizes, admission all), "
        "one core, `python bench/policies.py`:",
        "",
        *speed_rows(results),
        "",
    ]
    text += ["![miss ratio against cache size](policies.png)", ""]
    (args.out / "policies.md").write_text("\n".join(text))
    print(f"wrote {args.out / 'policies.md'} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
