"""Host and GPU memory of this process (psutil and nvidia-smi are optional; /proc is enough on Linux)."""

from __future__ import annotations

import os
import sys
from typing import Any

from edgeseg.bench.device import CommandRunner, run_command


def current_rss_mb(statm_path: str = "/proc/self/statm") -> float | None:
    """Resident set size now, in MiB: /proc/self/statm field 2 (pages), else psutil, else None."""
    try:
        with open(statm_path) as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except Exception:
        return None


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far, in MiB (getrusage: KiB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def parse_compute_apps(text: str, pid: int) -> float | None:
    """`nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits` -> MiB used by `pid`.

    0.0 when `pid` has no GPU context; None when it has one but the size is not reported ('[N/A]', as on
    some Jetson and MIG setups) - unknown is not zero.
    """
    rows = [[p.strip() for p in line.split(",")] for line in text.strip().splitlines()]
    mine = [r for r in rows if len(r) >= 2 and r[0].isdigit() and int(r[0]) == pid]
    if not mine:
        return 0.0
    values = []
    for row in mine:
        try:
            values.append(float(row[1]))
        except ValueError:
            continue
    return sum(values) if values else None


def process_gpu_memory_mb(run: CommandRunner | None = run_command, pid: int | None = None) -> float | None:
    """GPU memory held by this process per nvidia-smi; None without nvidia-smi (e.g. Jetson: shared RAM)."""
    if run is None:
        return None
    text = run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
    if text is None:
        return None
    return parse_compute_apps(text, os.getpid() if pid is None else pid)


def snapshot(run: CommandRunner | None = run_command) -> dict[str, Any]:
    return {"host_rss_mb": current_rss_mb(), "gpu_mb": process_gpu_memory_mb(run)}


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float | None]:
    def diff(key: str) -> float | None:
        a, b = before.get(key), after.get(key)
        return round(b - a, 1) if a is not None and b is not None else None

    return {"host_rss_delta_mb": diff("host_rss_mb"), "gpu_delta_mb": diff("gpu_mb")}
