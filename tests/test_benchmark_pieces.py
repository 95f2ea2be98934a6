"""benchmarks/adaptation.py and domain_gap.py: committed pieces match across checkouts; the gap table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import adaptation  # noqa: E402
import domain_gap  # noqa: E402


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
