"""Draw miss ratio against cache size, one curve per policy (needs matplotlib)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from packrat.simulator.replay import Result


def plot(results: list[Result], path: Path, title: str = "") -> None:
    """Save object and byte miss-ratio curves side by side to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        curves[result.policy].append(result)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for policy, runs in curves.items():
        runs.sort(key=lambda r: r.size_bytes)
        mib = [r.size_bytes / 2**20 for r in runs]
        axes[0].plot(mib, [r.object_miss_ratio for r in runs], marker="o", label=policy)
        axes[1].plot(mib, [r.byte_miss_ratio for r in runs], marker="o", label=policy)
    for ax, label in zip(axes, ("object miss ratio", "byte miss ratio"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("cache size (MiB)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
