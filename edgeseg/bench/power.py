"""Power sampling on Jetson with `tegrastats`: the total input rail, its average and energy per frame.

tegrastats prints one line per interval. Rails appear as `NAME cur/avg`, in milliwatts:
  Orin / JetPack 5-6:  `... VDD_IN 5000mW/5000mW VDD_CPU_GPU_CV 805mW/805mW VDD_SOC 1448mW/1448mW`
  Nano / TX2 (JP 4):   `... POM_5V_IN 2000/2000 POM_5V_GPU 41/41 POM_5V_CPU 328/328`
Only rails that measure the whole module input are used for the total (summing sub-rails would count
some power twice); boards without such a rail (Xavier AGX, AGX Orin) report the rails but no total.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# The total module input rail, in order of preference.
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")


def parse_tegrastats_line(line: str) -> dict[str, float]:
    """Instantaneous power of every rail on one tegrastats line, in milliwatts ({'VDD_IN': 5000.0, ...}).

    'RAM 2450/7620MB' and 'SWAP 0/3810MB' have a unit suffix other than mW and are not matched.
    """
    return {m.group(1): float(m.group(2)) for m in _RAIL.finditer(line)}


def total_input_mw(rails: dict[str, float]) -> tuple[str, float] | None:
    for name in TOTAL_RAILS:
        if name in rails:
            return name, rails[name]
    return None


@dataclass
class PowerSamples:
    """Timestamped (perf_counter seconds) total-input-rail readings."""

    rail: str | None = None
    times: list[float] = field(default_factory=list)
    milliwatts: list[float] = field(default_factory=list)
    rails_seen: set[str] = field(default_factory=set)

    def add_line(self, line: str, t: float) -> None:
        rails = parse_tegrastats_line(line)
        self.rails_seen.update(rails)
        total = total_input_mw(rails)
        if total is not None:
            self.rail = total[0]
            self.times.append(t)
            self.milliwatts.append(total[1])

    def window_mean_w(self, start: float, end: float) -> float | None:
        """Mean power (W) of readings taken inside [start, end]."""
        inside = [mw for t, mw in zip(self.times, self.milliwatts, strict=True) if start <= t <= end]
        return sum(inside) / len(inside) / 1000.0 if inside else None

    def window_count(self, start: float, end: float) -> int:
        return sum(1 for t in self.times if start <= t <= end)


def energy_summary(
    mean_w: float | None, idle_w: float | None, seconds: float, frames: int, samples: int, rail: str | None
) -> dict[str, Any]:
    """Average power and energy per frame (J = W x s); 'above idle' subtracts the idle baseline."""
    per_frame = mean_w * seconds / frames if mean_w is not None and frames else None
    above = (
        (mean_w - idle_w) * seconds / frames if mean_w is not None and idle_w is not None and frames else None
    )
    return {
        "rail": rail,
        "samples": samples,
        "seconds": seconds,
        "frames": frames,
        "mean_w": mean_w,
        "idle_w": idle_w,
        "energy_per_frame_mj": per_frame * 1000 if per_frame else None,
        "energy_per_frame_above_idle_mj": above * 1000 if above is not None else None,
    }


class TegrastatsSampler:
    """Runs `tegrastats --interval MS` in the background and timestamps each line as it arrives."""

    def __init__(self, interval_ms: int = 100, command: Sequence[str] | None = None) -> None:
        self.interval_ms = interval_ms
        self.command = list(command) if command else ["tegrastats", "--interval", str(interval_ms)]
        self.samples = PowerSamples()
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        return shutil.which("tegrastats") is not None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            now = time.perf_counter()
            with self._lock:
                self.samples.add_line(line, now)

    def wait_for_samples(self, count: int, timeout_s: float) -> bool:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            with self._lock:
                if len(self.samples.times) >= count:
                    return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def __enter__(self) -> TegrastatsSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
