"""tegrastats parsing (Orin and older formats), energy per frame, and the background sampler."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from edgeseg.bench.power import (
    PowerSamples,
    TegrastatsSampler,
    energy_summary,
    parse_tegrastats_line,
    total_input_mw,
)

ORIN_NANO = (
    "04-25-2024 10:00:01 RAM 2450/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) "
    "CPU [2%@1510,1%@1510,0%@1510,0%@1510,3%@1510,1%@1510] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305] "
    "NVENC off NVDEC off VIC_FREQ 115 APE 200 cpu@47.5C soc2@46.9C soc0@47.2C gpu@47.0C tj@47.5C "
    "soc1@46.8C VDD_IN 5000mW/4800mW VDD_CPU_GPU_CV 805mW/790mW VDD_SOC 1448mW/1400mW"
)
NANO = (
    "RAM 1234/3964MB (lfb 1x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [5%@1479,2%@1479,1%@1479,0%@1479] EMC_FREQ 0%@1600 GR3D_FREQ 0%@921 APE 25 PLL@33C CPU@35.5C "
    "PMIC@50C GPU@33.5C AO@41.5C thermal@34.25C POM_5V_IN 2000/2100 POM_5V_GPU 41/41 POM_5V_CPU 328/330"
)
XAVIER_AGX = (
    "RAM 3056/31919MB (lfb 6964x4MB) SWAP 0/15959MB (cached 0MB) CPU [1%@1190,off,off,off] "
    "EMC_FREQ 0% GR3D_FREQ 0% AO@37C GPU@37.5C Tdiode@39.75C PMIC@50C "
    "GPU 0/0 CPU 311/311 SOC 1243/1243 CV 0/0 VDDRQ 155/155 SYS5V 1474/1474"
)


def test_parse_orin_format() -> None:
    rails = parse_tegrastats_line(ORIN_NANO)
    assert rails == {"VDD_IN": 5000.0, "VDD_CPU_GPU_CV": 805.0, "VDD_SOC": 1448.0}  # RAM/SWAP not rails
    assert total_input_mw(rails) == ("VDD_IN", 5000.0)


def test_parse_older_format_without_units() -> None:
    rails = parse_tegrastats_line(NANO)
    assert rails == {"POM_5V_IN": 2000.0, "POM_5V_GPU": 41.0, "POM_5V_CPU": 328.0}
    assert total_input_mw(rails) == ("POM_5V_IN", 2000.0)


def test_board_without_total_rail_reports_none_rather_than_a_sum() -> None:
    rails = parse_tegrastats_line(XAVIER_AGX)
    assert rails["SYS5V"] == 1474.0 and rails["GPU"] == 0.0
    assert total_input_mw(rails) is None


def test_window_mean_and_energy_per_frame() -> None:
    samples = PowerSamples()
    for t, mw in [(0.0, 3000), (0.5, 3000), (1.0, 5000), (1.5, 5000), (2.0, 5000), (2.5, 9000)]:
        samples.add_line(f"RAM 1/2MB VDD_IN {mw}mW/{mw}mW", t)
    assert samples.rail == "VDD_IN"
    assert samples.window_mean_w(0.0, 0.6) == pytest.approx(3.0)
    assert samples.window_mean_w(1.0, 2.0) == pytest.approx(5.0)
    assert samples.window_count(1.0, 2.0) == 3
    assert samples.window_mean_w(10, 11) is None
    e = energy_summary(mean_w=5.0, idle_w=3.0, seconds=2.0, frames=100, samples=3, rail="VDD_IN")
    assert e["energy_per_frame_mj"] == pytest.approx(100.0)  # 5 W x 2 s / 100 frames = 0.1 J
    assert e["energy_per_frame_above_idle_mj"] == pytest.approx(40.0)
    assert energy_summary(None, None, 1.0, 10, 0, None)["energy_per_frame_mj"] is None


def write_fake_tegrastats(tmp_path: Path, line: str, interval_s: float = 0.02) -> list[str]:
    script = tmp_path / "fake_tegrastats.py"
    script.write_text(
        f"import sys, time\nwhile True:\n    print({line!r}, flush=True)\n    time.sleep({interval_s})\n"
    )
    return [sys.executable, str(script)]


def test_sampler_reads_a_live_process_and_stops_it(tmp_path: Path) -> None:
    sampler = TegrastatsSampler(command=write_fake_tegrastats(tmp_path, ORIN_NANO))
    with sampler:
        assert sampler.wait_for_samples(5, timeout_s=10)
        t_end = time.perf_counter()
    assert sampler._proc is not None and sampler._proc.poll() is not None  # terminated
    assert sampler.samples.rail == "VDD_IN"
    assert sampler.samples.window_mean_w(0, t_end) == pytest.approx(5.0)
