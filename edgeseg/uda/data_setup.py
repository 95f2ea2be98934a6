"""Datasets of one adaptation run: where they are, rendering the synthetic benchmark when needed, and the
batch streams. Path problems are found here, before any network is built or trained.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from edgeseg.data.datasets import SegDataset, load_dataset
from edgeseg.errors import InputPathError
from edgeseg.uda.batches import BatchStream, rare_class_sampler
from edgeseg.uda.config import DistillConfig

LOG = logging.getLogger("edgeseg")


def synthetic_root(cfg: DistillConfig, out_dir: Path) -> Path:
    return out_dir / "synthetic"


def resolved_roots(cfg: DistillConfig, out_dir: Path) -> tuple[Path, Path]:
    """(source root, target root); an empty root of a synthetic dataset means `<out>/synthetic`."""
    d = cfg.data
    src = Path(d.source_root) if d.source_root else None
    tgt = Path(d.target_root) if d.target_root else None
    for name, dataset, root in (("data.source_root", d.source, src), ("data.target_root", d.target, tgt)):
        if root is None and dataset != "synthetic":
            raise InputPathError(
                f"{name} is empty; set it to the {dataset} folder, e.g. --set {name}=/data/{dataset}"
            )
        if root is not None and not root.is_dir():
            raise InputPathError(f"{name} '{root}' does not exist; point it at the {dataset} dataset folder")
    return src or synthetic_root(cfg, out_dir), tgt or synthetic_root(cfg, out_dir)


def _domain(value: str) -> str | None:
    return value or None


def needed_synthetic_domains(cfg: DistillConfig) -> list[str]:
    d = cfg.data
    out = []
    if d.source == "synthetic" and not d.source_root:
        out.append(d.source_domain)
    if d.target == "synthetic" and not d.target_root:
        out.append(d.target_domain)
    return list(dict.fromkeys(out))


def ensure_synthetic(cfg: DistillConfig, root: Path, domains: list[str], log=LOG.info) -> None:
    """Render the synthetic domains into `root` unless a matching rendering (seed, size, counts) is there."""
    if not domains:
        return
    from edgeseg.data.synthetic import GENERATOR_VERSION, render_dataset

    s = cfg.synthetic
    splits = {"train": s.train_images, "val": s.val_images}
    if s.test_images > 0:
        splits["test"] = s.test_images
    manifest_path = root / "synthetic.json"
    have: list[str] = []
    if manifest_path.is_file():
        try:
            m = json.loads(manifest_path.read_text())
            if (
                m.get("version") == GENERATOR_VERSION
                and m.get("seed") == s.seed
                and list(m.get("size", [])) == list(s.size)
                and m.get("splits") == splits
            ):
                have = list(m.get("domains", []))
        except ValueError:
            have = []
    if all(d in have for d in domains):
        return
    todo = list(dict.fromkeys(have + domains))
    log(
        f"rendering the synthetic benchmark ({', '.join(todo)}; {'+'.join(map(str, splits.values()))} images of "
        f"{s.size[0]}x{s.size[1]} each) into {root}"
    )
    render_dataset(root, todo, size=tuple(s.size), seed=s.seed, splits=splits)


@dataclass
class RunData:
    source: BatchStream
    target: BatchStream
    val: SegDataset
    target_train: SegDataset  # unlabelled target images (inconsistency measurement)


def load_run_data(cfg: DistillConfig, out_dir: Path, rcs_cache: Path) -> RunData:
    d = cfg.data
    src_root, tgt_root = resolved_roots(cfg, out_dir)
    oracle = cfg.method == "oracle"
    source = load_dataset(d.source, src_root, d.source_split, _domain(d.source_domain))
    target_train = load_dataset(
        d.target,
        tgt_root,
        d.target_split,
        _domain(d.target_domain),
        with_labels=oracle or cfg.train.pl_precision,
    )
    val = load_dataset(d.target, tgt_root, d.val_split, _domain(d.target_domain))
    if d.val_max_images and len(val) > d.val_max_images:
        val = SegDataset(val.spec, val.root, val.split, val.domain, val.samples[: d.val_max_images])
    sampler = None
    if d.rcs_temperature > 0 and not oracle:
        sampler = rare_class_sampler(
            source, d.rcs_temperature, d.rcs_min_pixels, d.rcs_min_crop_ratio, rcs_cache
        )
    src_stream = BatchStream(
        source, d.crop, d.source_resize, d.flip, True, d.cache_images, d.cat_max_ratio, sampler
    )
    diag = cfg.train.pl_precision and not oracle  # labels for the precision log only, never a loss
    tgt_stream = BatchStream(
        target_train,
        d.crop,
        d.target_resize,
        d.flip,
        oracle,
        d.cache_images,
        d.cat_max_ratio,
        keep_labels=diag,
    )
    return RunData(src_stream, tgt_stream, val, target_train)
