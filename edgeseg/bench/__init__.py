"""On-device latency benchmarks: statistics, device facts, interleaved timing, GMACs, power, reports.

Torch-free: everything here runs on a Jetson image with numpy, OpenCV and ONNX Runtime / TensorRT.
Submodules: stats, device, runner, memory, power, onnx_flops, targets, report, core.
"""

from __future__ import annotations

from edgeseg.bench.core import BenchConfig, run_benchmark
from edgeseg.bench.report import SCHEMA_VERSION, validate_report
from edgeseg.bench.runner import RunPlan
from edgeseg.bench.stats import LatencyStats, percentile, summarize

__all__ = [
    "SCHEMA_VERSION",
    "BenchConfig",
    "LatencyStats",
    "RunPlan",
    "percentile",
    "run_benchmark",
    "summarize",
    "validate_report",
]
