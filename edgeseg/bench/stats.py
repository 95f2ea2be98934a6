"""Latency statistics over a sample of per-iteration timings.

Percentiles use linear interpolation between closest ranks, the same definition as
`numpy.percentile(..., method="linear")` (Hyndman & Fan type 7, also Excel's PERCENTILE.INC): for
sorted samples x[0..n-1] the q-th percentile sits at rank r = q/100 * (n - 1) and is
x[floor(r)] + (r - floor(r)) * (x[floor(r) + 1] - x[floor(r)]). The standard deviation is the sample
standard deviation (n - 1 in the denominator): the timings are a sample of an unbounded process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

STAT_KEYS = ("n", "mean", "median", "p90", "p99", "min", "max", "std", "cv")


def percentile(samples: Sequence[float], q: float) -> float:
    """q-th percentile (0..100) with linear interpolation (numpy's default `method="linear"`)."""
    if not samples:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(samples)
    rank = q / 100.0 * (len(ordered) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (rank - lo) * (ordered[hi] - ordered[lo])


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one timing series, all values in milliseconds except n and cv (a ratio)."""

    n: int
    mean: float
    median: float
    p90: float
    p99: float
    min: float
    max: float
    std: float
    cv: float  # coefficient of variation = std / mean

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def fps(self, batch: int = 1) -> float:
        """Throughput of a sequential loop: frames per second = batch / mean latency."""
        return batch * 1000.0 / self.mean if self.mean > 0 else math.inf


def summarize(samples_ms: Sequence[float]) -> LatencyStats:
    """Statistics of a timing series in milliseconds; needs at least two samples (std is undefined for one)."""
    n = len(samples_ms)
    if n < 2:
        raise ValueError(f"need at least 2 timing samples for statistics, got {n}")
    mean = math.fsum(samples_ms) / n
    var = math.fsum((x - mean) ** 2 for x in samples_ms) / (n - 1)
    std = math.sqrt(var)
    return LatencyStats(
        n=n,
        mean=mean,
        median=percentile(samples_ms, 50.0),
        p90=percentile(samples_ms, 90.0),
        p99=percentile(samples_ms, 99.0),
        min=min(samples_ms),
        max=max(samples_ms),
        std=std,
        cv=std / mean if mean > 0 else 0.0,
    )


# Above this coefficient of variation the run is too noisy to compare models that differ by ~10%.
HIGH_CV = 0.10


def is_noisy(stats: LatencyStats, threshold: float = HIGH_CV) -> bool:
    return stats.cv > threshold


CLOCK_ADVICE = (
    "to fix, lock the clocks and quiet the machine: on a Jetson `sudo nvpmodel -m 0` and "
    "`sudo jetson_clocks` (and a fan); on a PC set the CPU governor to performance "
    "(`sudo cpupower frequency-set -g performance`) and close other load"
)
