"""Benchmark results as a JSON document (schema in docs/bench.md), a terminal table and a plot."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeseg.bench.stats import CLOCK_ADVICE, HIGH_CV, STAT_KEYS, summarize

SCHEMA_VERSION = 1

REPORT_KEYS = (
    "schema_version",
    "tool",
    "edgeseg_version",
    "created_utc",
    "command",
    "settings",
    "device",
    "peak_host_rss_mb",
    "host_load",
    "power_idle",
    "results",
    "warnings",
)
RESULT_KEYS = (
    "model",
    "model_name",
    "backend_requested",
    "backend",
    "input_size",
    "batch",
    "mode",
    "model_file_mb",
    "graph",
    "warmup_iterations",
    "iterations",
    "latency_ms",
    "stages_ms",
    "device_infer_ms",
    "fps",
    "memory",
    "power",
    "warnings",
)


def _stats_or_none(samples: Sequence[float]) -> dict[str, Any] | None:
    return summarize(samples).to_dict() if len(samples) >= 2 else None


def build_result(case: Any, mode: str, backend_requested: str) -> dict[str, Any]:
    """One result entry from a measured `CaseRun` (its .info carries model path, file size, graph, memory)."""
    stats = summarize(case.total_ms)
    info = case.info
    warnings = []
    if stats.cv > HIGH_CV:
        warnings.append(f"{case.label}: latency varies a lot (CV {stats.cv:.1%} > {HIGH_CV:.0%})")
    stages = None
    if mode == "e2e":
        stages = {name: summarize(series).to_dict() for name, series in case.stage_ms.items()}
    h, w = case.sizes[0]
    return {
        "model": info.get("model"),
        "model_name": info.get("model_name"),
        "backend_requested": backend_requested,
        "backend": getattr(case.segmenter, "backend", None),
        "input_size": [h, w],
        "batch": case.batch,
        "mode": mode,
        "model_file_mb": info.get("model_file_mb"),
        "graph": info.get("graph"),
        "warmup_iterations": case.warmup_iterations,
        "iterations": stats.n,
        "latency_ms": stats.to_dict(),
        "stages_ms": stages,
        "device_infer_ms": _stats_or_none(case.device_ms),
        "fps": stats.fps(case.batch),
        "memory": info.get("memory", {"host_rss_delta_mb": None, "gpu_delta_mb": None}),
        "power": info.get("power"),
        "warnings": warnings,
    }


def device_warnings(device: dict[str, Any]) -> list[str]:
    """Run-level warnings about the machine state, from the facts that were read (never assumed)."""
    out = []
    jetson = device.get("jetson")
    if jetson:
        locked = (jetson.get("jetson_clocks") or {}).get("applied")
        if locked is False:
            out.append(
                "jetson_clocks is not applied (min clock < max clock): run `sudo jetson_clocks` for "
                "stable numbers"
            )
        mode = jetson.get("nvpmodel") or {}
        if mode.get("id") not in (None, 0):
            out.append(
                f"nvpmodel mode is {mode.get('id')} ({mode.get('name')}), not 0: `sudo nvpmodel -m 0` "
                "for the maximum-performance mode"
            )
    governors = device.get("cpu", {}).get("governors") or []
    if governors and governors != ["performance"] and not jetson:
        out.append(
            f"CPU frequency governor is {', '.join(governors)}, not performance: latencies include clock "
            "ramp-up (`sudo cpupower frequency-set -g performance`)"
        )
    return out


def build_report(
    results: list[dict[str, Any]],
    settings: dict[str, Any],
    device: dict[str, Any],
    peak_host_rss_mb: float | None,
    power_idle: dict[str, Any] | None = None,
    command: Sequence[str] | None = None,
    host_load: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from edgeseg import __version__

    warnings = device_warnings(device) + [w for r in results for w in r["warnings"]]
    cores = (device.get("cpu") or {}).get("usable_cores") or (device.get("cpu") or {}).get("logical_cores")
    before = (host_load or {}).get("before")  # taken before our own threads start loading the CPU
    if cores and before and before[0] > 0.5 * cores:
        warnings.append(
            f"the machine was busy before the run (1-min load average {before[0]:.1f} on {cores} "
            "cores): other processes shared the CPU, latencies are pessimistic"
        )
    noisy = sum(1 for r in results if r["latency_ms"]["cv"] > HIGH_CV)
    if noisy:
        warnings.append(
            f"{noisy} of {len(results)} cases have CV > {HIGH_CV:.0%}: small differences are noise; "
            f"{CLOCK_ADVICE}"
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "edgeseg bench",
        "edgeseg_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(command) if command is not None else None,
        "settings": settings,
        "device": device,
        "peak_host_rss_mb": peak_host_rss_mb,
        "host_load": host_load,
        "power_idle": power_idle,
        "results": results,
        "warnings": warnings,
    }


def validate_report(report: dict[str, Any]) -> list[str]:
    """Problems with a report against schema v1 (empty list: valid). Used by tests and by readers."""
    problems = [f"missing key: {k}" for k in REPORT_KEYS if k not in report]
    if report.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version is {report.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    for i, res in enumerate(report.get("results") or []):
        problems += [f"results[{i}] missing key: {k}" for k in RESULT_KEYS if k not in res]
        blocks = [("latency_ms", res.get("latency_ms"))]
        blocks += [(f"stages_ms.{s}", v) for s, v in (res.get("stages_ms") or {}).items()]
        if res.get("device_infer_ms") is not None:
            blocks.append(("device_infer_ms", res["device_infer_ms"]))
        for name, block in blocks:
            if not isinstance(block, dict) or any(k not in block for k in STAT_KEYS):
                problems.append(f"results[{i}].{name} is not a statistics block with keys {STAT_KEYS}")
            elif not block["min"] <= block["median"] <= block["p90"] <= block["p99"] <= block["max"]:
                problems.append(f"results[{i}].{name} percentiles are not ordered")
        if not isinstance(res.get("fps"), (int, float)) or res["fps"] <= 0:
            problems.append(f"results[{i}].fps must be a positive number")
    return problems


# ------------------------------------------------------------------------------------------------ table
def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _key_columns(table: Any) -> None:
    table.add_column("model", overflow="fold")
    table.add_column("backend", overflow="fold")
    table.add_column("size", no_wrap=True)


def render_tables(report: dict[str, Any]) -> list[Any]:
    """Two rich Tables (latency; breakdown and resources), one row per model x backend x size.

    Two narrow tables instead of one wide one: they stay readable in an 80-column SSH session.
    """
    from rich.table import Table

    results = report["results"]
    has_power = any(r.get("power") for r in results)
    has_device = any(r.get("device_infer_ms") for r in results)
    mode = results[0]["mode"] if results else "e2e"

    def key(r: dict[str, Any]) -> list[str]:
        return [
            r["model_name"],
            r["backend"] or r["backend_requested"],
            "x".join(map(str, r["input_size"])) + (f" b{r['batch']}" if r["batch"] != 1 else ""),
        ]

    what = "end-to-end" if mode == "e2e" else "inference only"
    lat = Table(title=f"latency, ms per batch ({what})", title_justify="left")
    _key_columns(lat)
    for col in ("mean", "median", "p90", "p99", "CV", "FPS"):
        lat.add_column(col, justify="right", no_wrap=True)
    for r in results:
        st = r["latency_ms"]
        lat.add_row(
            *key(r),
            _fmt(st["mean"], 2),
            _fmt(st["median"], 2),
            _fmt(st["p90"], 2),
            _fmt(st["p99"], 2),
            f"{st['cv']:.0%}",
            _fmt(r["fps"], 1),
        )

    res = Table(title="breakdown (median ms) and resources", title_justify="left")
    _key_columns(res)
    if mode == "e2e":
        for col in ("pre", "infer", "post"):
            res.add_column(col, justify="right", no_wrap=True)
    if has_device:
        res.add_column("GPU ev.", justify="right", no_wrap=True)
    for col in ("GMACs", "MB", "RSS+MB"):
        res.add_column(col, justify="right", no_wrap=True)
    if has_power:
        res.add_column("W", justify="right", no_wrap=True)
        res.add_column("mJ/fr", justify="right", no_wrap=True)
    for r in results:
        row = key(r)
        if mode == "e2e":
            row += [_fmt(r["stages_ms"][s]["median"], 2) for s in ("preprocess", "infer", "postprocess")]
        if has_device:
            row.append(_fmt((r.get("device_infer_ms") or {}).get("median"), 2))
        graph = r.get("graph") or {}
        row += [
            _fmt(graph.get("gmacs"), 2),
            _fmt(r.get("model_file_mb"), 1),
            _fmt((r.get("memory") or {}).get("host_rss_delta_mb"), 0),
        ]
        if has_power:
            p = r.get("power") or {}
            row += [_fmt(p.get("mean_w"), 2), _fmt(p.get("energy_per_frame_mj"), 1)]
        res.add_row(*row)
    return [lat, res]


# ------------------------------------------------------------------------------------------------- plot
def write_plot(report: dict[str, Any], out: str | Path) -> Path:
    """Median latency (whisker to p90) versus input size, one line per model x backend; bars if one size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeseg.bench.device import device_label
    from edgeseg.io_utils import atomic_path

    results = report["results"]
    sizes = sorted({tuple(r["input_size"]) for r in results}, key=lambda s: s[0] * s[1])
    series: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        series.setdefault(f"{r['model_name']} / {r['backend'] or r['backend_requested']}", []).append(r)
    fig, ax = plt.subplots(figsize=(8, 5))
    if len(sizes) > 1:
        for name, rows in series.items():
            rows = sorted(rows, key=lambda r: r["input_size"][0] * r["input_size"][1])
            x = [r["input_size"][0] * r["input_size"][1] / 1e6 for r in rows]
            med = [r["latency_ms"]["median"] for r in rows]
            up = [r["latency_ms"]["p90"] - r["latency_ms"]["median"] for r in rows]
            ax.errorbar(x, med, yerr=[[0] * len(up), up], marker="o", capsize=3, label=name)
        ax.set_xscale("log")  # sizes usually double in each side: even spacing
        ax.set_yscale("log")
        ax.set_xticks([s[0] * s[1] / 1e6 for s in sizes], ["x".join(map(str, s)) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("input size (H x W)")
    else:
        labels = [f"{r['model_name']}\n{r['backend'] or r['backend_requested']}" for r in results]
        med = [r["latency_ms"]["median"] for r in results]
        up = [r["latency_ms"]["p90"] - r["latency_ms"]["median"] for r in results]
        ax.bar(range(len(results)), med, yerr=[[0] * len(up), up], capsize=3)
        ax.set_xticks(range(len(results)), labels, fontsize=8)
        ax.set_xlabel(f"model / backend at {'x'.join(map(str, sizes[0]))}")
    ax.set_ylabel("latency per batch, ms (median, whisker to p90)")
    ax.set_title(f"edgeseg bench on {device_label(report['device'])}")
    ax.grid(True, which="both", alpha=0.3)
    if len(sizes) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower() or "png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120)
    plt.close(fig)
    return out
