import json
from types import SimpleNamespace

import numpy as np
import pytest

from edgeseg.data.datasets import load_dataset
from edgeseg.data.sampling import (
    ClassStats,
    RareClassSampler,
    class_frequencies,
    load_or_compute_stats,
    rcs_probabilities,
)


def test_rcs_probabilities_follow_daformer_formula():
    freq = np.array([0.7, 0.2, 0.1, 0.0])
    p = rcs_probabilities(freq, temperature=0.1)
    e = np.exp((1 - freq[:3]) / 0.1)
    assert p[:3] == pytest.approx(e / e.sum())
    assert p[3] == 0.0 and p.sum() == pytest.approx(1.0)
    assert p[2] > p[1] > p[0]  # rarer -> sampled more


def test_rcs_temperature_limits():
    freq = np.array([0.5, 0.3, 0.2])
    assert rcs_probabilities(freq, 1e6) == pytest.approx(np.full(3, 1 / 3), abs=1e-6)
    sharp = rcs_probabilities(freq, 0.01)
    assert sharp[2] > 0.99  # default T concentrates on the rarest class
    with pytest.raises(ValueError):
        rcs_probabilities(freq, 0.0)


def test_sampler_draws_images_containing_the_class():
    counts = np.zeros((4, 19), np.int64)
    counts[:, 0] = 10_000  # road everywhere
    counts[2, 18] = 5_000  # bicycles only in image 2
    counts[3, 18] = 10  # too few to count as "rich"
    stats = ClassStats("x", "train", ("a", "b", "c", "d"), counts)
    freq = class_frequencies(stats.totals)
    assert freq[0] == pytest.approx(40_000 / 45_010)
    sampler = RareClassSampler(stats, temperature=0.01, min_pixels=3000)
    rng = np.random.default_rng(0)
    draws = [sampler.sample(rng) for _ in range(200)]
    assert draws.count(2) > 150  # the rare class dominates sampling at T=0.01


def test_stats_cache_roundtrip_and_invalidation(data_trees: SimpleNamespace, tmp_path):
    root = tmp_path / "cs"
    for k in range(2):
        fid = f"ulm_{k:06d}_000019"
        data_trees.write(root / f"leftImg8bit/train/ulm/{fid}_leftImg8bit.png", np.zeros((4, 4, 3), np.uint8))
        data_trees.write(
            root / f"gtFine/train/ulm/{fid}_gtFine_labelTrainIds.png", np.full((4, 4), k, np.uint8)
        )
    ds = load_dataset("cityscapes", root, "train")
    cache = tmp_path / "stats.json"
    stats = load_or_compute_stats(ds, cache)
    assert stats.counts[:, :2].tolist() == [[16, 0], [0, 16]]
    obj = json.loads(cache.read_text())
    obj["counts"][0][0] = 999  # a cache for the same frames is trusted...
    cache.write_text(json.dumps(obj))
    assert load_or_compute_stats(ds, cache).counts[0, 0] == 999
    obj["frame_ids"] = ["other", "frames"]  # ...one for different frames is recomputed
    cache.write_text(json.dumps(obj))
    assert load_or_compute_stats(ds, cache).counts[0, 0] == 16
