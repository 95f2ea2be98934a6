"""benchmarks/adaptation.py and domain_gap.py: committed pieces match across checkouts; the gap table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import adaptation  # noqa: E402
import domain_gap  # noqa: E402
import merging  # noqa: E402


def _config(root: str, **data) -> dict:
    return {
        "seed": 0,
        "data": {"source_root": root, "target_root": root, "crop": [96, 192], **data},
        "duda": {"kl_view": "clean_target"},
    }


def test_pieces_match_across_checkouts_but_not_across_settings() -> None:
    saved = _config("/work/a/runs/synthetic")
    saved["duda"] = {}  # an option added after the piece was made, wanted at its default
    defaults = {"duda": {"kl_view": "clean_target"}}
    want = _config("/elsewhere/runs/synthetic")
    assert not adaptation.config_matches(saved, want, defaults)  # the raw paths differ
    assert adaptation.config_matches(adaptation.portable(saved), adaptation.portable(want), defaults)
    other = _config("/elsewhere/runs/synthetic", crop=[128, 256])
    assert not adaptation.config_matches(adaptation.portable(saved), adaptation.portable(other), defaults)


def test_gap_table_means_and_spread() -> None:
    def piece(miou: float) -> dict:
        return {"student": {"target_miou": miou}}

    results = {
        ("city", "source_only", 0): piece(0.10),
        ("city", "source_only", 1): piece(0.12),
        ("city", "oracle", 0): piece(0.30),
        ("city", "oracle", 1): piece(0.32),
    }
    (row,) = domain_gap.gap_table(results, ["city"], [0, 1])
    assert row["source_only"] == pytest.approx(11.0) and row["oracle"] == pytest.approx(31.0)
    assert row["gap"] == pytest.approx(20.0) and row["oracle_std"] == pytest.approx(1.41, abs=0.01)
    assert row["per_seed"]["source_only"] == [10.0, 12.0]


def test_merging_seed_summary_compares_each_seed_with_its_own_best_single() -> None:
    def piece(single_a: float, single_b: float, merged: float) -> dict:
        row = lambda model, h: {"model": model, "miou": {"city": h, "night": h}, "harmonic_mean": h}  # noqa: E731
        rows = [
            row("single: city student", single_a),
            row("single: night student", single_b),
            row("bn", merged),
        ]
        return {"settings": [{"domains": ["city", "night"], "rows": rows}]}

    summary = merging.seed_summary({0: piece(0.10, 0.08, 0.12), 1: piece(0.05, 0.07, 0.06)})
    rows = {r["model"]: r for r in summary["settings"][0]["rows"]}
    assert summary["seeds"] == [0, 1]
    assert rows["bn"]["gain_per_seed"] == pytest.approx(
        [0.02, -0.01]
    )  # against 0.10 for seed 0, 0.07 for seed 1
    assert rows["bn"]["harmonic_mean"][0] == pytest.approx(0.09)
    assert rows["bn"]["gain_over_best_single"][1] == pytest.approx(
        0.0212, abs=1e-4
    )  # sample std of 0.02, -0.01
    text = merging.seeds_markdown(summary, "python benchmarks/merging.py --tabulate-seeds 0,1")
    assert "| bn | 9.00 ± 4.24 | 9.00 ± 4.24 | 9.00 ± 4.24 | +0.50 ± 2.12 | +2.00, -1.00 |" in text


def test_merging_benchmark_has_rows_for_every_registered_method() -> None:
    from edgeseg.merge.methods import REGISTRY

    plans = merging.merge_plans(Path("init.safetensors"), ("city", "night", "fog"))
    assert {options.method for _, options in plans} == set(REGISTRY)
    assert len({label for label, _ in plans}) == len(plans)  # row labels are unique
    for _, options in plans:
        assert (options.base is not None) == REGISTRY[options.method].needs_base
    assert sum(options.method == "layerwise" for _, options in plans) == 3  # one row per anchor


def test_pieces_of_a_reshipped_encoder_are_not_reused() -> None:
    """Pieces name inits `builtin:<name>`; the manifest sha256 they were made with must match today's."""
    want = {"models": {"large_init": "builtin:mit_b1_synth", "small_init": "builtin:mit_b0_d1_synth"}}
    now = adaptation.builtin_init_sha256(want)
    assert set(now) == {"builtin:mit_b1_synth", "builtin:mit_b0_d1_synth"}
    # the encoders were re-shipped (corpus `things`) after the legacy pieces: those are never reused now
    assert all(now[k] != adaptation.LEGACY_INIT_SHA256[k] for k in now)
    assert not adaptation.same_inits({}, want)  # a piece from before hashes were recorded
    assert adaptation.same_inits({"init_sha256": dict(now)}, want)
    stale = {**now, "builtin:mit_b0_d1_synth": "0" * 64}
    assert not adaptation.same_inits({"init_sha256": stale}, want)
    assert adaptation.same_inits(
        {"init_sha256": stale}, {"models": {"small_init": "runs/x/encoder.safetensors"}}
    )
