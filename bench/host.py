"""What the host did besides a benchmark: the share of CPU time its hypervisor took (steal) during the run.

On a shared VM the absolute times of the same run move 1.2-2x between hours. Stolen time is the visible sign of one
cause (session 28's slowest runs came while `top` showed steal); neighbours sharing the caches and memory bandwidth
slow a run without any (a quick browser run at 0.4 % steal was 1.3x the idle hour's). Each benchmark records it
beside its results, so that a reader can tell a busy host from a slow decoder where it shows. Read from /proc/stat
(Linux); None elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
import time

STAT = Path("/proc/stat")


def _cpu_times() -> list[int] | None:
    """The aggregate ``cpu`` line: user nice system idle iowait irq softirq steal (clock ticks since boot)."""
    try:
        fields = STAT.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if fields[:1] != ["cpu"] or len(fields) < 9:
        return None
    return [int(v) for v in fields[1:9]]


def busy_seconds() -> float | None:
    """CPU seconds this machine has spent busy since boot, over all its cores (user, nice, system, irq, softirq: not
    idle, I/O wait or stolen), or None without /proc/stat. The difference of two readings is the CPU time everything
    on the machine used in between, at the kernel's clock-tick resolution (10 ms a core)."""
    t = _cpu_times()
    if t is None:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, _steal = t
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class CpuWatch:
    """Started at construction; ``report()`` gives the CPU time shares since then."""

    def __init__(self) -> None:
        self._start, self._t0 = _cpu_times(), time.monotonic()

    def report(self) -> dict | None:
        """{"seconds", "stealPercent", "busyPercent"} since construction (busy: this guest's user + system time,
        the benchmark's own included), or None without /proc/stat or before a clock tick has passed."""
        end = _cpu_times()
        if self._start is None or end is None:
            return None
        d = [b - a for a, b in zip(self._start, end, strict=True)]
        total = sum(d)
        if total <= 0:
            return None
        idle, iowait, steal = d[3], d[4], d[7]
        return {"seconds": round(time.monotonic() - self._t0, 1), "stealPercent": round(100 * steal / total, 1),
                "busyPercent": round(100 * (total - idle - iowait - steal) / total, 1)}


def describe(cpu: dict | None) -> str:
    """One Markdown line for a benchmark's table."""
    if cpu is None:
        return "Host CPU time during the run: not available (no /proc/stat)."
    return (f"Host CPU time during the run ({cpu['seconds']:.0f} s): **{cpu['stealPercent']:.1f} % stolen** by the "
            f"hypervisor, {cpu['busyPercent']:.1f} % busy in this machine (the benchmark included).")
