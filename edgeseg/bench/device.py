"""Device facts recorded next to every benchmark result, read from the system and never assumed.

Every reader takes a `root` (default "/") so tests can point it at a fake /proc, /sys and /etc tree.
Commands (`nvpmodel -q`, `nvidia-smi`) only run when `root` is the real "/" and a `run` callable is
given; with a fake root they are skipped, so a test never touches the host's tools.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

CommandRunner = Callable[[list[str]], "str | None"]

# ARM "CPU part" codes (implementer 0x41 = Arm, 0x4e = NVIDIA): aarch64 kernels print no model name.
_ARM_PARTS = {
    (0x41, 0xD03): "Cortex-A53",
    (0x41, 0xD04): "Cortex-A35",
    (0x41, 0xD05): "Cortex-A55",
    (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD09): "Cortex-A73",
    (0x41, 0xD0A): "Cortex-A75",
    (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD41): "Cortex-A78",
    (0x41, 0xD42): "Cortex-A78AE",
    (0x41, 0xD44): "Cortex-X1",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4F): "Neoverse-V2",
    (0x4E, 0x003): "NVIDIA Denver 2",
    (0x4E, 0x004): "NVIDIA Carmel",
}

# L4T release -> JetPack, from NVIDIA's JetPack archive; exact matches only (anything else: unknown).
_L4T_TO_JETPACK = {
    "32.4.3": "4.4",
    "32.4.4": "4.4.1",
    "32.5.0": "4.5",
    "32.5.1": "4.5.1",
    "32.5.2": "4.5.1",
    "32.6.1": "4.6",
    "32.7.1": "4.6.1",
    "32.7.2": "4.6.2",
    "32.7.3": "4.6.3",
    "32.7.4": "4.6.4",
    "32.7.5": "4.6.5",
    "32.7.6": "4.6.6",
    "35.1.0": "5.0.2",
    "35.2.1": "5.1",
    "35.3.1": "5.1.1",
    "35.4.1": "5.1.2",
    "35.5.0": "5.1.3",
    "35.6.0": "5.1.4",
    "35.6.1": "5.1.5",
    "36.2.0": "6.0 DP",
    "36.3.0": "6.0",
    "36.4.0": "6.1",
    "36.4.3": "6.2",
    "36.4.4": "6.2.1",
}

# devfreq node names of Jetson GPUs (Orin ga10b, Xavier gv11b, TX2 gp10b, Nano/TX1 gm20b).
_GPU_DEVFREQ = re.compile(r"(ga10b|gv11b|gp10b|gm20b|gpu)", re.IGNORECASE)


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel.lstrip("/")).read_text(errors="replace")
    except OSError:
        return None


def run_command(argv: list[str], timeout: float = 5.0) -> str | None:
    """Run a read-only system query; None when the tool is missing or fails."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


# --------------------------------------------------------------------------------------------- CPU / OS
def read_cpu(root: Path = Path("/")) -> dict[str, Any]:
    """CPU model name and logical core count from /proc/cpuinfo (+ online CPUs from /sys)."""
    text = _read(root, "proc/cpuinfo") or ""
    model = None
    processors = 0
    implementer = part = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            processors += 1
        elif key in ("model name", "cpu model") and model is None and value:
            model = value
        elif key == "cpu implementer" and implementer is None:
            implementer = int(value, 16)
        elif key == "cpu part" and part is None:
            part = int(value, 16)
    if model is None and implementer is not None and part is not None:
        model = _ARM_PARTS.get((implementer, part), f"ARM implementer {implementer:#x} part {part:#x}")
    online = _parse_cpu_list(_read(root, "sys/devices/system/cpu/online"))
    return {"model": model, "logical_cores": processors or None, "online_cores": online}


def _parse_cpu_list(text: str | None) -> int | None:
    """'0-3,6' -> 5 CPUs."""
    if not text or not text.strip():
        return None
    count = 0
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        count += (int(hi) - int(lo) + 1) if hi else 1
    return count


def read_cpu_frequencies(root: Path = Path("/")) -> list[dict[str, Any]]:
    """Per-CPU governor and min/max/current scaling frequency (kHz) from cpufreq sysfs."""
    base = root / "sys/devices/system/cpu"
    out = []
    for cpu_dir in sorted(base.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
        freq = cpu_dir / "cpufreq"
        if not freq.is_dir():
            continue
        entry: dict[str, Any] = {"cpu": int(cpu_dir.name[3:])}
        for name in (
            "scaling_governor",
            "scaling_min_freq",
            "scaling_max_freq",
            "scaling_cur_freq",
            "cpuinfo_max_freq",
        ):
            value = _read(freq, name)
            if value is not None:
                value = value.strip()
                entry[name] = int(value) if value.isdigit() else value
        out.append(entry)
    return out


def read_os(root: Path = Path("/")) -> dict[str, Any]:
    name = None
    for line in (_read(root, "etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            name = line.split("=", 1)[1].strip().strip('"')
    kernel = (_read(root, "proc/sys/kernel/osrelease") or "").strip() or None
    return {"name": name, "kernel": kernel}


# ------------------------------------------------------------------------------------------- libraries
def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _module_version(module: str) -> str | None:
    """Import only as a fallback (apt-installed OpenCV/TensorRT on Jetson carry no pip metadata)."""
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return str(getattr(__import__(module), "__version__", None))
    except Exception:  # a broken install must not kill a benchmark
        return None


def read_libraries() -> dict[str, Any]:
    """Versions of what the timing depends on. torch's version is read from metadata, never imported."""
    libs: dict[str, Any] = {
        "numpy": _dist_version("numpy"),
        "onnx": _dist_version("onnx"),
        "onnxruntime": _dist_version("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml"),
        "opencv": _dist_version(
            "opencv-python-headless",
            "opencv-python",
            "opencv-contrib-python",
            "opencv-contrib-python-headless",
        )
        or _module_version("cv2"),
        "tensorrt": _dist_version("tensorrt", "tensorrt-cu12", "tensorrt-cu11")
        or _module_version("tensorrt"),
        "torch": _dist_version("torch"),
    }
    if libs["onnxruntime"] is not None:
        try:
            import onnxruntime

            libs["onnxruntime_providers"] = onnxruntime.get_available_providers()
        except Exception:
            libs["onnxruntime_providers"] = None
    return libs


# ------------------------------------------------------------------------------------------------ CUDA
def read_cuda_toolkit(root: Path = Path("/")) -> str | None:
    """CUDA toolkit version from /usr/local/cuda/version.json (>= 11.1) or version.txt (older)."""
    text = _read(root, "usr/local/cuda/version.json")
    if text:
        m = re.search(r'"cuda"\s*:\s*\{[^}]*"version"\s*:\s*"([\d.]+)"', text)
        if m:
            return m.group(1)
    text = _read(root, "usr/local/cuda/version.txt")
    if text:
        m = re.search(r"CUDA Version\s+([\d.]+)", text)
        if m:
            return m.group(1)
    return None


def parse_nvidia_smi_gpus(text: str) -> list[dict[str, Any]]:
    """Parse `nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits`."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            gpus.append(
                {
                    "name": parts[0],
                    "driver": parts[1],
                    "memory_total_mb": float(parts[2]) if _is_number(parts[2]) else None,
                }
            )
    return gpus


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_gpus(run: CommandRunner | None) -> list[dict[str, Any]]:
    if run is None:
        return []
    text = run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"]
    )
    return parse_nvidia_smi_gpus(text) if text else []


# ---------------------------------------------------------------------------------------------- Jetson
def parse_l4t_release(text: str) -> str | None:
    """'# R36 (release), REVISION: 3.0, ...' -> '36.3.0'."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return None
    parts = [m.group(1), *m.group(2).split(".")]
    while len(parts) < 3:
        parts.append("0")
    return ".".join(parts[:3])


def read_jetpack_from_dpkg(root: Path) -> str | None:
    """The `nvidia-jetpack` meta-package version, when installed (e.g. '6.0+b106' -> '6.0')."""
    text = _read(root, "var/lib/dpkg/status")
    if not text:
        return None
    for block in text.split("\n\n"):
        if re.search(r"^Package: nvidia-jetpack$", block, re.MULTILINE):
            m = re.search(r"^Version: ([\d.]+)", block, re.MULTILINE)
            if m:
                return m.group(1)
    return None


def parse_nvpmodel_query(text: str) -> dict[str, Any]:
    """`nvpmodel -q` prints 'NV Power Mode: MAXN' and then the mode id on its own line."""
    name = mode_id = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("NV Power Mode:"):
            name = line.split(":", 1)[1].strip()
        elif line.isdigit():
            mode_id = int(line)
    return {"id": mode_id, "name": name}


def parse_nvpmodel_conf_names(text: str) -> dict[int, str]:
    """'< POWER_MODEL ID=0 NAME=MAXN >' lines of /etc/nvpmodel.conf -> {0: 'MAXN'}."""
    return {
        int(m.group(1)): m.group(2) for m in re.finditer(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)", text)
    }


def read_nvpmodel(root: Path, run: CommandRunner | None) -> dict[str, Any] | None:
    """Power mode: `nvpmodel -q` when it can run, else /var/lib/nvpmodel/status + names from nvpmodel.conf."""
    if run is not None:
        text = run(["nvpmodel", "-q"])
        if text:
            return {**parse_nvpmodel_query(text), "source": "nvpmodel -q"}
    status = _read(root, "var/lib/nvpmodel/status")
    if status:
        m = re.search(r"pmode:(\d+)", status)
        if m:
            mode_id = int(m.group(1))
            names = parse_nvpmodel_conf_names(_read(root, "etc/nvpmodel.conf") or "")
            return {"id": mode_id, "name": names.get(mode_id), "source": "/var/lib/nvpmodel/status"}
    return None


def read_gpu_devfreq(root: Path = Path("/")) -> list[dict[str, Any]]:
    """Jetson GPU devfreq nodes with their min/max/current frequency (Hz)."""
    out = []
    base = root / "sys/class/devfreq"
    for node in sorted(base.glob("*")) if base.is_dir() else []:
        if not _GPU_DEVFREQ.search(node.name):
            continue
        entry: dict[str, Any] = {"node": node.name}
        for name in ("min_freq", "max_freq", "cur_freq", "governor"):
            value = _read(node, name)
            if value is not None:
                value = value.strip()
                entry[name] = int(value) if value.isdigit() else value
        out.append(entry)
    return out


def clocks_locked(cpus: list[dict[str, Any]], gpus: list[dict[str, Any]]) -> dict[str, Any]:
    """jetson_clocks pins every minimum frequency to its maximum: compare min with max, CPU and GPU.

    None means "could not tell" (no cpufreq / devfreq entries), not "no".
    """
    cpu_pairs = [
        (c["scaling_min_freq"], c["scaling_max_freq"])
        for c in cpus
        if isinstance(c.get("scaling_min_freq"), int) and isinstance(c.get("scaling_max_freq"), int)
    ]
    gpu_pairs = [
        (g["min_freq"], g["max_freq"])
        for g in gpus
        if isinstance(g.get("min_freq"), int) and isinstance(g.get("max_freq"), int)
    ]
    cpu_locked = all(lo == hi for lo, hi in cpu_pairs) if cpu_pairs else None
    gpu_locked = all(lo == hi for lo, hi in gpu_pairs) if gpu_pairs else None
    known = [v for v in (cpu_locked, gpu_locked) if v is not None]
    return {
        "cpu_min_eq_max": cpu_locked,
        "gpu_min_eq_max": gpu_locked,
        "applied": all(known) if known else None,
    }


def read_jetson(root: Path = Path("/"), run: CommandRunner | None = None) -> dict[str, Any] | None:
    """Jetson board facts, or None when this is not a Jetson (no nv_tegra_release, no Jetson model)."""
    model = _read(root, "proc/device-tree/model")
    model = model.replace("\x00", "").strip() if model else None
    release = _read(root, "etc/nv_tegra_release")
    if release is None and not (model and "jetson" in model.lower()):
        return None
    l4t = parse_l4t_release(release) if release else None
    jetpack = read_jetpack_from_dpkg(root)
    jetpack_source = "dpkg nvidia-jetpack" if jetpack else None
    if jetpack is None and l4t in _L4T_TO_JETPACK:
        jetpack, jetpack_source = _L4T_TO_JETPACK[l4t], "derived from L4T release"
    cpus = read_cpu_frequencies(root)
    gpus = read_gpu_devfreq(root)
    return {
        "model": model,
        "l4t": l4t,
        "jetpack": jetpack,
        "jetpack_source": jetpack_source,
        "nvpmodel": read_nvpmodel(root, run),
        "gpu_devfreq": gpus,
        "jetson_clocks": clocks_locked(cpus, gpus),
    }


# ----------------------------------------------------------------------------------------------- all
def read_device_facts(
    root: str | os.PathLike[str] = "/", run: CommandRunner | None = run_command
) -> dict[str, Any]:
    """Everything the result depends on. With a fake `root`, host commands and host-only facts are skipped."""
    root = Path(root)
    real = root.resolve() == Path("/")
    runner = run if real else None
    cpus = read_cpu_frequencies(root)
    governors = sorted({c["scaling_governor"] for c in cpus if isinstance(c.get("scaling_governor"), str)})
    facts: dict[str, Any] = {
        "hostname": platform.node() if real else None,
        "machine": platform.machine() if real else None,
        "cpu": {
            **read_cpu(root),
            "governors": governors,
            "usable_cores": len(os.sched_getaffinity(0))
            if real and hasattr(os, "sched_getaffinity")
            else None,
        },
        "os": read_os(root),
        "python": platform.python_version(),
        "libraries": read_libraries(),
        "cuda_toolkit": read_cuda_toolkit(root),
        "gpus": read_gpus(runner),
        "jetson": read_jetson(root, runner),
    }
    return facts


def device_label(facts: dict[str, Any]) -> str:
    """A short file-name-safe name of the device, e.g. 'jetson-orin-nano' or 'intel-xeon-processor-2c'."""
    jetson = facts.get("jetson")
    if jetson and jetson.get("model"):
        text = jetson["model"].replace("NVIDIA", "").replace("Developer Kit", "")
    elif facts.get("gpus"):
        text = facts["gpus"][0]["name"]
    else:
        cpu = facts.get("cpu", {})
        cores = cpu.get("usable_cores") or cpu.get("logical_cores")
        text = f"{cpu.get('model') or 'cpu'} {cores}c" if cores else (cpu.get("model") or "cpu")
    text = re.sub(r"\((r|tm)\)", "", text, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"
