"""``packrat simulate``: replay a trace through the server's own policies."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from packrat.core.settings import Settings
from packrat.policies import POLICIES
from packrat.simulator.charges import CHARGES, make_charge
from packrat.simulator.replay import ADMISSIONS, Result, replay
from packrat.simulator.sizes import parse_size
from packrat.simulator.traces import FORMATS, read_trace, unique_bytes

PLOT_NEEDS = "--plot needs matplotlib: pip install matplotlib (in Packrat's venv)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="packrat simulate",
        description="Replay a request trace through Packrat's eviction policies and "
        "print object and byte miss ratios per policy and cache size. By default each "
        "object is charged and evicted as `packrat serve` does it, so the hit ratio is "
        "the server's; for libCacheSim's numbers: --charge bytes --low-water 1 "
        "--admission policy.",
        epilog="trace formats: "
        + "; ".join(f"{name}: {what}" for name, what in FORMATS.items())
        + ". The format is guessed from the file name (.tsv nasa, .csv csv, "
        "oracleGeneral or .bin oracleGeneral, else webcachesim).",
    )
    p.add_argument("--trace", required=True, type=Path, help="trace file (.xz/.gz/.bz2 ok)")
    p.add_argument(
        "--format",
        choices=sorted(FORMATS),
        help="trace format (default: guessed from the file name)",
    )
    p.add_argument(
        "--policy",
        action="append",
        metavar="NAME",
        help=f"policy to replay, repeatable, or 'all' (default: all): {', '.join(POLICIES)}",
    )
    p.add_argument(
        "--size",
        action="append",
        metavar="SIZE",
        help="cache size (max_size), repeatable: 10%% of what the trace's distinct objects "
        "take (as charged), or 64M, 2G... (default: 1%%, 5%%, 10%%, 25%%)",
    )
    p.add_argument(
        "--charge",
        choices=CHARGES,
        default="server",
        help="what an object costs: server: its file (data and metadata) in whole blocks "
        "plus its index row, as packrat serve counts (default); bytes: its data bytes, "
        "as libCacheSim counts",
    )
    p.add_argument(
        "--root",
        type=Path,
        metavar="DIR",
        help="the cache root: blocks are counted in its file system's block size "
        "(default: 4 KiB, the least the server counts)",
    )
    p.add_argument(
        "--low-water",
        type=float,
        default=Settings.cache_low_water,
        help="evict down to this fraction of the cache when full "
        f"(default: {Settings.cache_low_water}, as [cache] low_water)",
    )
    p.add_argument(
        "--admission",
        choices=ADMISSIONS,
        default="all",
        help="all: store every object that fits, as the server does (default); "
        "policy: let the policy refuse objects too, as libCacheSim does",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per run")
    p.add_argument("--plot", type=Path, metavar="PNG", help="draw miss ratio vs cache size")
    return p


def _policies(names: list[str] | None) -> list[str]:
    if not names or "all" in names:
        return list(POLICIES)
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policy {unknown[0]!r}; choose from {', '.join(POLICIES)}")
    return names


def _table(results: list[Result]) -> str:
    lines = [
        f"{'policy':<8} {'size':>14} {'requests':>9} {'obj miss':>9} {'byte miss':>9} {'req/s':>10}"
    ]
    for r in results:
        lines.append(
            f"{r.policy:<8} {r.size_bytes:>14,} {r.requests:>9,} {r.object_miss_ratio:>9.4f} "
            f"{r.byte_miss_ratio:>9.4f} {r.requests_per_second:>10,.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error(PLOT_NEEDS)
    try:
        if not 0 < args.low_water <= 1:
            raise ValueError(f"--low-water must be more than 0 and at most 1, not {args.low_water}")
        policies = _policies(args.policy)
        charge = make_charge(args.charge, args.root)
        requests = read_trace(args.trace, args.format)
        total = unique_bytes(requests, charge)
        sizes = [parse_size(s, total) for s in args.size or ["1%", "5%", "10%", "25%"]]
    except (OSError, ValueError) as e:
        parser.error(str(e))
    results = [
        replay(requests, name, size, args.low_water, args.admission, charge)
        for size in sizes
        for name in policies
    ]
    if args.json:
        for r in results:
            print(json.dumps(r.as_dict()))
    else:
        print(
            f"{args.trace.name}: {len(requests):,} requests, {unique_bytes(requests):,} "
            f"unique bytes ({total:,} as charged: {args.charge}), "
            f"admission {args.admission}, low water {args.low_water}"
        )
        print(_table(results))
    if args.plot:
        from packrat.simulator.plot import plot

        plot(results, args.plot, args.trace.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
