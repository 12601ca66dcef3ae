"""CPU time read from /proc: of one process and all its descendants, and of the machine.

A server's CPU cost is the CPU time of every process it consists of: Packrat's
supervisor, coordinator and front ends; nginx's master and workers.  Each
process's ``utime + stime`` counts its own threads, and ``cutime + cstime``
the children it has already waited for, so a tree's total stays right when a
child exits between two readings.  Everything here reads /proc once per call
and needs no privileges; it is Linux-only, like the benchmark.

With tick-based accounting (``CONFIG_TICK_CPU_ACCOUNTING`` without
``CONFIG_IRQ_TIME_ACCOUNTING``, as on the machine these numbers were first
taken on) the softirq time a process spends on its own loopback traffic is in
its ``stime`` and in the machine's ``softirq`` column alike, so
:func:`machine_busy` counts irq and softirq as busy and "machine minus ours"
is other processes' work.  With irq time accounting, that softirq time is in
no process: servers' CPU leaves it out and it shows as other processes' work,
so a run is flagged more readily, never less.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")  # /proc's time unit per second
KTHREADD = 2  # parent of every kernel thread


@dataclass(frozen=True)
class Snapshot:
    """Every process's parent and CPU seconds (its own plus its reaped children's)."""

    parent: dict[int, int]
    cpu: dict[int, float]

    def tree(self, root: int) -> list[int]:
        """``root`` and all its descendants alive at the time of the snapshot."""
        children: dict[int, list[int]] = {}
        for pid, ppid in self.parent.items():
            children.setdefault(ppid, []).append(pid)
        found, todo = [], [root]
        while todo:
            pid = todo.pop()
            if pid in self.cpu:
                found.append(pid)
                todo.extend(children.get(pid, ()))
        return found

    def tree_cpu(self, root: int) -> float:
        """CPU seconds used so far by ``root`` and its descendants, reaped ones included."""
        return sum(self.cpu[pid] for pid in self.tree(root))

    def kernel_cpu(self) -> dict[int, float]:
        """CPU seconds of each kernel thread (ksoftirqd, kworkers writing back our files...)."""
        return {pid: c for pid, c in self.cpu.items() if self.parent[pid] == KTHREADD}


def read_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds incl. reaped children) of one process, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / TICKS


def snapshot() -> Snapshot:
    """Parent and CPU time of every process on the machine, read now."""
    parent, cpu = {}, {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                parent[int(entry.name)], cpu[int(entry.name)] = stat
    return Snapshot(parent, cpu)


def machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (user, nice, system, irq, softirq).

    Steal (the hypervisor's other guests) and guest time are not counted:
    guest time is already inside user, and steal is no process of this machine.
    """
    with open("/proc/stat") as f:
        fields = f.readline().split()
    assert fields[0] == "cpu", fields
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / TICKS


@dataclass(frozen=True)
class Reading:
    """One moment: the wall clock, the machine's busy time, our tree's, the kernel threads'."""

    wall: float
    busy: float
    ours: float
    kernel: dict[int, float]  # per kernel thread
    servers: dict[int, float]  # per watched root pid: its tree's CPU seconds

    @classmethod
    def take(cls, roots: tuple[int, ...] = ()) -> Reading:
        """Read now; ``ours`` is this process's tree (servers, load generator, itself)."""
        busy = machine_busy()
        snap = snapshot()
        return cls(
            wall=time.monotonic(),
            busy=busy,
            ours=snap.tree_cpu(os.getpid()),
            kernel=snap.kernel_cpu(),
            servers={root: snap.tree_cpu(root) for root in roots},
        )

    def others(self, earlier: Reading) -> float:
        """Cores other processes kept busy on average since ``earlier`` (0.15 = 15 %)."""
        spent = (self.busy - earlier.busy) - (self.ours - earlier.ours)
        # Kernel threads come and go, and nothing inherits the time of one that
        # exits: only those alive at both moments are counted.
        spent -= sum(
            c - earlier.kernel[pid] for pid, c in self.kernel.items() if pid in earlier.kernel
        )
        return max(spent, 0.0) / max(self.wall - earlier.wall, 1e-9)

    def server_cpu(self, earlier: Reading, root: int) -> float:
        """CPU seconds the tree under ``root`` used since ``earlier``."""
        return self.servers[root] - earlier.servers[root]
