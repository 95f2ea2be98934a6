"""Device facts from fake /proc, /sys and /etc trees: a PC and Jetson Orin Nano / Nano boards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeseg.bench.device import (
    clocks_locked,
    device_label,
    parse_l4t_release,
    parse_nvidia_smi_gpus,
    parse_nvpmodel_conf_names,
    parse_nvpmodel_query,
    read_cpu,
    read_cuda_toolkit,
    read_device_facts,
    read_jetson,
    read_nvpmodel,
)
from edgeseg.bench.memory import delta, parse_compute_apps
from edgeseg.bench.report import device_warnings

ORIN_CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"
    f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd42\nCPU revision\t: 1\n\n"
    for i in range(6)
)

ORIN_NVPMODEL_CONF = """
< PARAM TYPE=FILE NAME=CPU_ONLINE >
CORE_0 /sys/devices/system/cpu/cpu0/online
< POWER_MODEL ID=0 NAME=15W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=1 NAME=7W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=2 NAME=MAXN_SUPER >
CPU_ONLINE CORE_0 1
< PM_CONFIG DEFAULT=0 >
"""


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _cpufreq(root: Path, cpus: int, lo: int, hi: int, governor: str) -> None:
    for i in range(cpus):
        base = f"sys/devices/system/cpu/cpu{i}/cpufreq"
        _write(root, f"{base}/scaling_min_freq", f"{lo}\n")
        _write(root, f"{base}/scaling_max_freq", f"{hi}\n")
        _write(root, f"{base}/scaling_cur_freq", f"{hi}\n")
        _write(root, f"{base}/scaling_governor", f"{governor}\n")


def make_orin_nano(root: Path, clocks: bool = True, pmode: int = 0) -> Path:
    _write(root, "proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    _write(
        root,
        "etc/nv_tegra_release",
        "# R36 (release), REVISION: 3.0, GCID: 36106755, BOARD: generic, EABI: aarch64, "
        "DATE: Thu Apr 25 03:14:05 UTC 2024\n# KERNEL_VARIANT: oot\n",
    )
    _write(root, "proc/cpuinfo", ORIN_CPUINFO)
    _write(root, "sys/devices/system/cpu/online", "0-5\n")
    _write(root, "etc/os-release", 'NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n')
    _write(root, "proc/sys/kernel/osrelease", "5.15.136-tegra\n")
    _write(root, "etc/nvpmodel.conf", ORIN_NVPMODEL_CONF)
    _write(root, "var/lib/nvpmodel/status", f"pmode:{pmode:04d} fmode:quiet\n")
    _write(
        root, "usr/local/cuda/version.json", json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.2.140"}})
    )
    cpu_min = 1510400 if clocks else 115200
    _cpufreq(root, 6, cpu_min, 1510400, "schedutil")
    gpu = "sys/class/devfreq/17000000.ga10b"
    _write(root, f"{gpu}/min_freq", ("624750000" if clocks else "306000000") + "\n")
    _write(root, f"{gpu}/max_freq", "624750000\n")
    _write(root, f"{gpu}/cur_freq", "624750000\n")
    _write(root, "sys/class/devfreq/3d00000.pcie/min_freq", "1\n")  # not a GPU: must be ignored
    return root


def make_pc(root: Path) -> Path:
    _write(
        root,
        "proc/cpuinfo",
        "".join(
            f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz\n"
            f"cpu cores\t: 6\n\n"
            for i in range(4)
        ),
    )
    _write(root, "etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    _cpufreq(root, 4, 800000, 4600000, "powersave")
    return root


def test_fake_orin_nano_tree(tmp_path: Path) -> None:
    facts = read_device_facts(make_orin_nano(tmp_path))
    j = facts["jetson"]
    assert j["model"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert j["l4t"] == "36.3.0"
    assert j["jetpack"] == "6.0" and j["jetpack_source"] == "derived from L4T release"
    assert j["nvpmodel"] == {"id": 0, "name": "15W", "source": "/var/lib/nvpmodel/status"}
    assert j["jetson_clocks"] == {"cpu_min_eq_max": True, "gpu_min_eq_max": True, "applied": True}
    assert [g["node"] for g in j["gpu_devfreq"]] == ["17000000.ga10b"]
    assert facts["cpu"]["model"] == "Cortex-A78AE" and facts["cpu"]["logical_cores"] == 6
    assert facts["cpu"]["online_cores"] == 6 and facts["cpu"]["governors"] == ["schedutil"]
    assert facts["os"] == {"name": "Ubuntu 22.04.4 LTS", "kernel": "5.15.136-tegra"}
    assert facts["cuda_toolkit"] == "12.2.140"
    # a fake root never runs host commands or reads host-only facts
    assert facts["gpus"] == [] and facts["hostname"] is None
    assert device_label(facts) == "jetson-orin-nano"
    assert device_warnings(facts) == []


def test_orin_nano_without_jetson_clocks_and_low_power_mode_warns(tmp_path: Path) -> None:
    facts = read_device_facts(make_orin_nano(tmp_path, clocks=False, pmode=1))
    j = facts["jetson"]
    assert j["jetson_clocks"]["applied"] is False
    assert j["jetson_clocks"]["cpu_min_eq_max"] is False and j["jetson_clocks"]["gpu_min_eq_max"] is False
    assert j["nvpmodel"]["id"] == 1 and j["nvpmodel"]["name"] == "7W"
    warnings = " ".join(device_warnings(facts))
    assert "jetson_clocks" in warnings and "nvpmodel -m 0" in warnings


def test_gpu_unlocked_alone_means_not_applied(tmp_path: Path) -> None:
    root = make_orin_nano(tmp_path)
    (root / "sys/class/devfreq/17000000.ga10b/min_freq").write_text("306000000\n")
    assert read_jetson(root)["jetson_clocks"] == {
        "cpu_min_eq_max": True,
        "gpu_min_eq_max": False,
        "applied": False,
    }


def test_jetpack_from_dpkg_wins_over_derivation(tmp_path: Path) -> None:
    root = make_orin_nano(tmp_path)
    _write(
        root,
        "var/lib/dpkg/status",
        "Package: nvidia-l4t-core\nVersion: 36.3.0-20240506\n\n"
        "Package: nvidia-jetpack\nStatus: install ok installed\n"
        "Version: 6.0+b106\nArchitecture: arm64\n\n",
    )
    j = read_jetson(root)
    assert j["jetpack"] == "6.0" and j["jetpack_source"] == "dpkg nvidia-jetpack"


def test_old_jetson_nano_release_and_unknown_release(tmp_path: Path) -> None:
    _write(
        tmp_path, "etc/nv_tegra_release", "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref\n"
    )
    _write(tmp_path, "proc/device-tree/model", "NVIDIA Jetson Nano Developer Kit\x00")
    j = read_jetson(tmp_path)
    assert j["l4t"] == "32.7.1" and j["jetpack"] == "4.6.1"
    assert (
        j["nvpmodel"] is None and j["jetson_clocks"]["applied"] is None
    )  # nothing to read: unknown, not "no"
    (tmp_path / "etc/nv_tegra_release").write_text("# R99 (release), REVISION: 1.0\n")
    j = read_jetson(tmp_path)
    assert j["l4t"] == "99.1.0" and j["jetpack"] is None and j["jetpack_source"] is None


def test_pc_tree_is_not_a_jetson(tmp_path: Path) -> None:
    facts = read_device_facts(make_pc(tmp_path))
    assert facts["jetson"] is None
    assert facts["cpu"]["model"] == "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"
    assert facts["cpu"]["logical_cores"] == 4 and facts["cpu"]["governors"] == ["powersave"]
    assert any("governor is powersave" in w for w in device_warnings(facts))
    assert device_label(facts).startswith("intel-core-i7-8700-cpu-3-20ghz")


def test_empty_tree_gives_unknowns_not_guesses(tmp_path: Path) -> None:
    facts = read_device_facts(tmp_path)
    assert facts["cpu"]["model"] is None and facts["cpu"]["logical_cores"] is None
    assert facts["jetson"] is None and facts["cuda_toolkit"] is None and facts["os"]["name"] is None


def test_real_system_facts_have_the_documented_keys() -> None:
    facts = read_device_facts("/")
    assert {"cpu", "os", "python", "libraries", "cuda_toolkit", "gpus", "jetson"} <= set(facts)
    assert facts["libraries"]["numpy"] is not None
    json.dumps(facts)  # must be JSON-serialisable


def test_parsers() -> None:
    assert parse_nvpmodel_query("NV Power Mode: MAXN\n0\n") == {"id": 0, "name": "MAXN"}
    assert parse_nvpmodel_conf_names(ORIN_NVPMODEL_CONF) == {0: "15W", 1: "7W", 2: "MAXN_SUPER"}
    assert parse_l4t_release("# R35 (release), REVISION: 4.1, GCID: 33958178") == "35.4.1"
    assert parse_l4t_release("garbage") is None
    assert parse_nvidia_smi_gpus("NVIDIA GeForce RTX 3090, 550.54.14, 24576\n") == [
        {"name": "NVIDIA GeForce RTX 3090", "driver": "550.54.14", "memory_total_mb": 24576.0}
    ]
    assert parse_compute_apps("1234, 512\n999, 100\n1234, 64\n", pid=1234) == 576.0
    assert parse_compute_apps("999, 100\n", pid=1234) == 0.0  # no GPU context: nothing held
    assert parse_compute_apps("1234, [N/A]\n", pid=1234) is None  # held but not reported: unknown
    assert delta({"host_rss_mb": 100.0, "gpu_mb": None}, {"host_rss_mb": 150.5, "gpu_mb": 3.0}) == {
        "host_rss_delta_mb": 50.5,
        "gpu_delta_mb": None,
    }


def test_nvpmodel_command_output_is_preferred(tmp_path: Path) -> None:
    root = make_orin_nano(tmp_path)
    calls: list[list[str]] = []

    def fake_run(argv: list[str]) -> str | None:
        calls.append(argv)
        return "NV Power Mode: MAXN_SUPER\n2\n" if argv[0] == "nvpmodel" else None

    assert read_nvpmodel(root, fake_run) == {"id": 2, "name": "MAXN_SUPER", "source": "nvpmodel -q"}
    assert calls == [["nvpmodel", "-q"]]
    assert read_nvpmodel(root, lambda argv: None)["source"] == "/var/lib/nvpmodel/status"


def test_cuda_toolkit_version_txt(tmp_path: Path) -> None:
    _write(tmp_path, "usr/local/cuda/version.txt", "CUDA Version 10.2.89\n")
    assert read_cuda_toolkit(tmp_path) == "10.2.89"


@pytest.mark.parametrize(
    ("implementer", "part", "name"),
    [
        ("0x41", "0xd08", "Cortex-A72"),
        ("0x4e", "0x004", "NVIDIA Carmel"),
        ("0x41", "0xfff", "ARM implementer 0x41 part 0xfff"),
    ],
)
def test_arm_cpu_names(tmp_path: Path, implementer: str, part: str, name: str) -> None:
    _write(
        tmp_path, "proc/cpuinfo", f"processor\t: 0\nCPU implementer\t: {implementer}\nCPU part\t: {part}\n"
    )
    assert read_cpu(tmp_path)["model"] == name


def test_clocks_locked_unknown_without_data() -> None:
    assert clocks_locked([], []) == {"cpu_min_eq_max": None, "gpu_min_eq_max": None, "applied": None}
