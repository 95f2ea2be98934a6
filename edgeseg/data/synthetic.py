"""Procedural multi-domain street scenes with pixel-exact labels: the built-in benchmark.

    bgr, label = render_scene(np.random.default_rng(0), "fog", (256, 512))
    render_dataset("data/synth", ["source", "city", "night", "fog", "rain"], num=200)
    ds = load_dataset("synthetic", "data/synth", "val", domain="fog")

Domains: `source` (clean, saturated "game engine" look), and targets `city` (real-world textures and
colours, camera blur/noise, denser and narrower streets), `night` (street lamps, headlights, lit
windows), `fog` (depth-dependent haze) and `rain` (wet reflections, streaks, lens drops). See
`synth_styles.py` for exactly what differs.

Each domain is written as a Cityscapes-layout tree, so the ordinary Cityscapes reader loads it:
`DIR/<domain>/leftImg8bit/<split>/<domain>/<domain>_<seq>_<frame>_leftImg8bit.png` and
`DIR/<domain>/gtFine/<split>/<domain>/<domain>_<seq>_<frame>_gtFine_labelTrainIds.png` (seq = the
split's index). Rendering is deterministic per (seed, domain, split, index).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg import sizes
from edgeseg.data.image_io import write_png
from edgeseg.data.synth_background import draw_facades, draw_ground, draw_sky, draw_skyline, sample_street
from edgeseg.data.synth_canvas import Camera, Canvas
from edgeseg.data.synth_effects import finish
from edgeseg.data.synth_place import paint_order, place_objects
from edgeseg.data.synth_styles import DOMAINS, DomainStyle
from edgeseg.errors import ConfigError
from edgeseg.io_utils import write_json_atomic

GENERATOR_VERSION = 1
DEFAULT_DOMAINS = ("source", "city", "night", "fog", "rain")
# Each split is its own random stream (scene_rng): `test` (seq 2) is for final numbers only; no choice is
# made on it (val is for choices).
SPLIT_SEQ = {"train": 0, "val": 1, "test": 2}


def get_style(domain: str | DomainStyle) -> DomainStyle:
    if isinstance(domain, DomainStyle):
        return domain
    try:
        return DOMAINS[domain]
    except KeyError:
        raise ConfigError(f"unknown synthetic domain {domain!r}; choose from: {', '.join(DOMAINS)}") from None


def render_scene(
    rng: np.random.Generator, domain: str | DomainStyle, size: tuple[int, int] = (256, 512)
) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: (BGR uint8 HxWx3 image, uint8 HxW trainIds; 255 only on the ego bonnet)."""
    style = get_style(domain)
    h, w = size
    lay, eff = style.layout, style.effects
    cam = Camera(
        h,
        w,
        f=w * rng.uniform(*lay.focal),
        yh=h * rng.uniform(*lay.horizon),
        xv=w * (0.5 + 0.03 * rng.standard_normal()),
    )
    street = sample_street(rng, style)
    canvas = Canvas(h, w)
    draw_sky(canvas, cam, style, rng)
    draw_ground(canvas, cam, street, style, rng)
    for side in (-1, 1):
        draw_facades(canvas, cam, street, style, rng, side, eff.night, eff.sun_shading)
    draw_skyline(canvas, cam, street, style, rng)
    for draw in paint_order(place_objects(rng, cam, street, style, eff.night, eff.sun_shading)):
        draw(canvas)
    if lay.ego_hood > 0:
        _draw_hood(canvas, lay.ego_hood)
    return finish(canvas, style, rng, cam.yh), canvas.label


def _draw_hood(cv: Canvas, height: float) -> None:
    """The camera car's bonnet, as in Cityscapes: dark, reflective, labelled ignore (255)."""
    h, w = cv.h, cv.w
    top = h * (1 - height)
    t = np.linspace(0, np.pi, 24)
    pts = np.stack(
        [w / 2 - 0.62 * w * np.cos(t), top + (h - top) * (1 - np.sin(t)) * 0.9 + 0.1 * (h - top)], 1
    )
    pts = np.vstack([pts, [[w * 1.2, h + 1], [-w * 0.2, h + 1]]])
    cv.poly(pts, 255, (0.1, 0.1, 0.11), 1.0)


def frame_id(domain: str, split: str, index: int) -> str:
    return f"{domain}_{SPLIT_SEQ[split]:06d}_{index:06d}"


def scene_rng(seed: int, domain: str, split: str, index: int) -> np.random.Generator:
    """Independent stream per (seed, domain, split, index): any image can be re-rendered alone."""
    key = int.from_bytes(hashlib.sha256(domain.encode()).digest()[:4], "little")
    return np.random.default_rng([seed, key, SPLIT_SEQ[split], index])


def image_paths(root: Path, domain: str, split: str, index: int) -> tuple[Path, Path]:
    fid = frame_id(domain, split, index)
    image = root / domain / "leftImg8bit" / split / domain / f"{fid}_leftImg8bit.png"
    label = root / domain / "gtFine" / split / domain / f"{fid}_gtFine_labelTrainIds.png"
    return image, label


def parse_size(text: str) -> tuple[int, int]:
    """'256x512' -> (256, 512): height x width, both multiples of 8, at least 64 and at most 4096."""
    return sizes.parse_size(text, multiple_of=8, min_side=64, max_side=4096)


def render_dataset(
    out: str | Path,
    domains: Sequence[str] = DEFAULT_DOMAINS,
    num: int = 200,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    splits: dict[str, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Render `splits` (default: train=num, val=max(num//4, 1)) for each domain; returns the manifest.

    The tree is rendered into a staging folder beside `out` and moved in when complete (io_utils.staged_dir):
    a failed or interrupted run leaves `out` as it was. In an existing tree each rendered domain replaces
    its folder whole. The manifest `synthetic.json` records what was rendered.
    """
    from edgeseg.io_utils import staged_dir

    for d in domains:
        get_style(d)
    splits = splits if splits is not None else {"train": num, "val": max(num // 4, 1)}
    for s in splits:
        if s not in SPLIT_SEQ:
            raise ConfigError(f"unknown split {s!r}; the synthetic benchmark has: {', '.join(SPLIT_SEQ)}")
    total = len(domains) * sum(splits.values())
    with staged_dir(out) as root:
        manifest = _render_into(root, domains, size, seed, splits, total, progress)
    return manifest


def _render_into(
    root: Path,
    domains: Sequence[str],
    size: tuple[int, int],
    seed: int,
    splits: dict[str, int],
    total: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    done = 0
    for domain in domains:
        for split, count in splits.items():
            for i in range(count):
                bgr, label = render_scene(scene_rng(seed, domain, split, i), domain, size)
                image_path, label_path = image_paths(root, domain, split, i)
                write_png(image_path, bgr)
                write_png(label_path, label)
                done += 1
                if progress:
                    progress(done, total)
    manifest = {
        "generator": "edgeseg.data.synthetic",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "size": list(size),
        "domains": list(domains),
        "splits": dict(splits),
        "dataset": "synthetic",
        "layout": "cityscapes",
    }
    write_json_atomic(root / "synthetic.json", manifest)
    return manifest


def ensure_dataset(
    out: str | Path,
    domains: Sequence[str] = DEFAULT_DOMAINS,
    num: int = 200,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    splits: dict[str, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """`render_dataset` unless `out` already holds exactly this rendering (same generator version,
    seed, size and splits, and at least these domains) - what benchmarks and quickstarts call."""
    splits = splits if splits is not None else {"train": num, "val": max(num // 4, 1)}
    manifest_path = Path(out) / "synthetic.json"
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
        except ValueError:
            old = {}
        if (
            old.get("version") == GENERATOR_VERSION
            and old.get("seed") == seed
            and old.get("size") == list(size)
            and old.get("splits") == dict(splits)
            and set(domains) <= set(old.get("domains", []))
        ):
            return old
    return render_dataset(out, domains, num, size, seed, splits, progress)
