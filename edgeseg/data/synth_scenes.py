"""The `scenes` pretraining corpus: random-coloured objects standing on a ground plane under a horizon.

    bgr, label = render_scene(np.random.default_rng(0), (96, 192))

The `shapes` corpus (synth_generic) teaches outlines and texture families of shapes that float anywhere.
What it cannot teach is layout: that the lower part of a picture is a ground receding to a horizon, that
things stand on it, and that they shrink as their base approaches the horizon. This corpus adds exactly
that and nothing of the benchmark: each image is

- an upper field and a ground plane split by a (slightly tilted) horizon at a random height; the ground's
  texture is drawn in ground coordinates, so stripes and checks converge to a vanishing point;
- 0-2 bands on the ground, running from the vanishing point to the bottom edge (generic perspective);
- 4-20 upright objects painted far to near, their base on the ground and their size proportional to the
  base's distance below the horizon; five generic kinds (block, round, pillar, peak, blob).

Every surface gets random colours (uniform over RGB) and one of the three texture families of
synth_generic, so colour never identifies a class. The label of a pixel is (texture family, kind):

    class = family * NUM_KINDS + kind

No benchmark class, palette, sky gradient, lighting, fog, rain, blur, noise or render is used (docs/data.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.data.synth_generic import TEXTURES, _paint

KINDS = ("upper", "ground", "band", "block", "round", "pillar", "peak", "blob")
UPPER, GROUND, BAND, BLOCK, ROUND, PILLAR, PEAK, BLOB = range(len(KINDS))
NUM_KINDS = len(KINDS)
NUM_CLASSES = NUM_KINDS * len(TEXTURES)
CORPUS_VERSION = 1


def class_names() -> list[str]:
    return [f"{tex}-{kind}" for tex in TEXTURES for kind in KINDS]


def _ground_surface(
    rng: np.random.Generator, family: int, h: int, w: int, horizon: float, vx: float
) -> np.ndarray:
    """An HxWx3 surface whose texture lives on the ground plane (converging to (vx, horizon))."""
    if family != 2:  # flat and noise families look alike in any projection at this size
        return _paint(rng, family, h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    below = np.maximum(yy - horizon, 0.5)
    depth = h / below  # 1 at the bottom edge, growing towards the horizon
    lateral = (xx - vx) / below
    period = rng.uniform(0.15, 0.6)
    if rng.random() < 0.5:  # stripes along the depth axis (converging lines) or across it
        u = lateral if rng.random() < 0.5 else depth * rng.uniform(0.5, 2.0)
        t = (np.sin(2 * np.pi * u / period) > rng.uniform(-0.5, 0.5)).astype(np.float32)
    else:
        t = ((np.floor(lateral / period) + np.floor(depth * rng.uniform(0.5, 2.0) / period)) % 2).astype(
            np.float32
        )
    c0 = rng.uniform(0, 255, 3).astype(np.float32)
    c1 = np.clip(c0 + rng.normal(0, 90, 3), 0, 255).astype(np.float32)
    return c0 * (1 - t[..., None]) + c1 * t[..., None]


def _object_mask(
    rng: np.random.Generator, kind: int, h: int, w: int, base: float, scale: float
) -> np.ndarray:
    """A uint8 HxW mask of one upright object of `kind` whose base is at row `base`."""
    mask = np.zeros((h, w), np.uint8)
    height = max(2.0, scale * rng.uniform(0.1, 0.9) * h)
    width = max(2.0, height * (rng.uniform(0.08, 0.25) if kind == PILLAR else rng.uniform(0.3, 1.6)))
    cx = rng.uniform(-0.1, 1.1) * w
    top = base - height
    if kind in (BLOCK, PILLAR):
        cv2.rectangle(mask, (int(cx - width / 2), int(top)), (int(cx + width / 2), int(base)), 1, -1)
    elif kind == ROUND:
        cv2.ellipse(mask, ((cx, base - height / 2), (width, height), 0.0), 1, -1)
    elif kind == PEAK:
        apex = cx + rng.uniform(-0.3, 0.3) * width
        pts = np.array([[cx - width / 2, base], [cx + width / 2, base], [apex, top]])
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    else:  # blob: a random star-convex polygon resting on its base
        n = int(rng.integers(6, 11))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.6, 1.0, n)
        pts = np.stack(
            [cx + rad * np.cos(ang) * width / 2, base - height / 2 + rad * np.sin(ang) * height / 2], 1
        )
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def render_scene(
    rng: np.random.Generator, size: tuple[int, int] = (96, 192)
) -> tuple[np.ndarray, np.ndarray]:
    """One corpus image: (BGR uint8 HxWx3, uint8 HxW class ids in [0, NUM_CLASSES))."""
    h, w = size
    horizon = rng.uniform(0.25, 0.65) * h
    tilt = rng.uniform(-0.08, 0.08) * h  # horizon height difference between the left and right edge
    vx = rng.uniform(0.2, 0.8) * w
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ground = yy > horizon + tilt * (xx / w - 0.5)

    family = int(rng.integers(len(TEXTURES)))
    img = _paint(rng, family, h, w)
    label = np.full((h, w), family * NUM_KINDS + UPPER, np.uint8)
    family = int(rng.integers(len(TEXTURES)))
    img[ground] = _ground_surface(rng, family, h, w, horizon, vx)[ground]
    label[ground] = family * NUM_KINDS + GROUND

    for _ in range(int(rng.integers(0, 3))):  # bands from the vanishing point to the bottom edge
        x0, x1 = sorted(rng.uniform(-0.3, 1.3, 2) * w)
        band = np.zeros((h, w), np.uint8)
        pts = np.array([[vx, horizon], [x0, h], [x1, h]])
        cv2.fillPoly(band, [np.round(pts).astype(np.int32)], 1)
        band = band.astype(bool) & ground
        family = int(rng.integers(len(TEXTURES)))
        img[band] = _ground_surface(rng, family, h, w, horizon, vx)[band]
        label[band] = family * NUM_KINDS + BAND

    bases = np.sort(rng.uniform(horizon + 1, h * 1.05, int(rng.integers(4, 21))))  # far to near
    for base in bases:
        kind = int(rng.integers(BLOCK, NUM_KINDS))
        mask = _object_mask(rng, kind, h, w, float(base), (base - horizon) / (h - horizon)).astype(bool)
        if not mask.any():
            continue
        family = int(rng.integers(len(TEXTURES)))
        img[mask] = _paint(rng, family, h, w)[mask]
        label[mask] = family * NUM_KINDS + kind
    return np.clip(img, 0, 255).astype(np.uint8), label
