"""The pretraining corpus: generic "dead leaves" images of textured shapes, the ImageNet of the synthetic world.

    bgr, label = render_generic(np.random.default_rng(0), (96, 192))

Each image is a textured background with 6-28 occluding shapes painted back to front. Every region gets
a random colour pair (uniform over RGB: saturated, grey, dark and bright alike) and one of three texture
families; the label of a pixel is (texture family, shape kind) of the surface that is visible there:

    class = family * NUM_SHAPES + shape        (shape 0 = the background field)

so a network must find outlines, group regions and tell textures apart - generic mid-level vision, the
part of ImageNet pretraining that transfers to segmentation (cf. dead-leaves / formula-driven
pretraining: Baradad et al. 2021, Kataoka et al. 2020).

What it deliberately does NOT contain (it must not leak the street-scene benchmark, see docs/data.md):
no perspective street layout, no benchmark class (road, car, person, ...) or its palettes, no sky, no
street furniture, no lighting model (night lamps, headlights), no fog, rain, wet reflections, camera blur,
sensor noise or vignetting, and none of the benchmark's renders. Only shapes, colours and textures.
"""

from __future__ import annotations

import cv2
import numpy as np

SHAPES = ("background", "ellipse", "rectangle", "triangle", "polygon", "star", "ring", "cross", "bar")
TEXTURES = ("flat", "noise", "pattern")
NUM_SHAPES = len(SHAPES)
NUM_CLASSES = NUM_SHAPES * len(TEXTURES)
CORPUS_VERSION = 1


def class_names() -> list[str]:
    return [f"{tex}-{shape}" for tex in TEXTURES for shape in SHAPES]


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth random field in [0, 1] with features about `cell` pixels wide (bilinear value noise)."""
    gh, gw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR if cell > 1.5 else cv2.INTER_NEAREST)


def _texture(rng: np.random.Generator, family: int, h: int, w: int) -> np.ndarray:
    """Mixing weight in [0, 1] between a region's two colours, HxW float32."""
    if family == 0:  # flat colour or a smooth linear gradient
        if rng.random() < 0.5:
            return np.zeros((h, w), np.float32)
        ang = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * np.cos(ang) + yy * np.sin(ang)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        return t * rng.uniform(0.3, 1.0)
    if family == 1:  # value noise: per-pixel grain to coarse blotches, random contrast
        cell = float(np.exp(rng.uniform(np.log(1.0), np.log(24.0))))
        return _value_noise(rng, h, w, cell) * rng.uniform(0.3, 1.0)
    # periodic: stripes at any angle, or a checkerboard
    period = rng.uniform(3.0, 16.0)
    ang = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = xx * np.cos(ang) + yy * np.sin(ang)
    if rng.random() < 0.6:
        return (np.sin(2 * np.pi * u / period) > rng.uniform(-0.5, 0.5)).astype(np.float32)
    v = -xx * np.sin(ang) + yy * np.cos(ang)
    return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)


def _paint(rng: np.random.Generator, family: int, h: int, w: int) -> np.ndarray:
    """An HxWx3 float32 surface: two random colours mixed by a texture of `family`."""
    c0 = rng.uniform(0, 255, 3).astype(np.float32)
    c1 = np.clip(c0 + rng.normal(0, 90, 3), 0, 255).astype(np.float32)
    t = _texture(rng, family, h, w)[..., None]
    return c0 * (1 - t) + c1 * t


def _star(cx: float, cy: float, r: float, points: int, inner: float, rot: float) -> np.ndarray:
    ang = rot + np.arange(2 * points) * np.pi / points
    rad = np.where(np.arange(2 * points) % 2 == 0, r, r * inner)
    return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)


def _rotated(pts: np.ndarray, cx: float, cy: float, rot: float) -> np.ndarray:
    c, s = np.cos(rot), np.sin(rot)
    d = pts - (cx, cy)
    return np.stack([cx + d[:, 0] * c - d[:, 1] * s, cy + d[:, 0] * s + d[:, 1] * c], 1)


def _shape_mask(rng: np.random.Generator, shape: int, h: int, w: int) -> np.ndarray:
    """A uint8 HxW mask (1 inside) of one shape of kind `shape` (1..NUM_SHAPES-1)."""
    mask = np.zeros((h, w), np.uint8)
    r = float(np.exp(rng.uniform(np.log(0.04), np.log(0.45)))) * min(h, w) * 1.4
    cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
    rot = rng.uniform(0, 2 * np.pi)
    sh = SHAPES[shape]
    if sh == "ellipse":
        cv2.ellipse(mask, ((cx, cy), (2 * r, 2 * r * rng.uniform(0.3, 1.0)), np.degrees(rot)), 1, -1)
    elif sh == "ring":
        cv2.ellipse(
            mask,
            ((cx, cy), (2 * r, 2 * r * rng.uniform(0.5, 1.0)), np.degrees(rot)),
            1,
            max(1, int(r * rng.uniform(0.15, 0.5))),
        )
    elif sh == "rectangle":
        box = cv2.boxPoints(((cx, cy), (2 * r, 2 * r * rng.uniform(0.2, 1.0)), np.degrees(rot)))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    elif sh == "triangle":
        pts = _star(cx, cy, r, 3, 1.0, rot)[::2] * rng.uniform(0.7, 1.3, (3, 2)) + rng.normal(
            0, r * 0.1, (3, 2)
        )
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    elif sh == "polygon":
        n = int(rng.integers(5, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = r * rng.uniform(0.5, 1.0, n)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    elif sh == "star":
        pts = _star(cx, cy, r, int(rng.integers(4, 9)), rng.uniform(0.3, 0.6), rot)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    elif sh == "cross":
        arm = r * rng.uniform(0.15, 0.4)
        bar1 = np.array([[cx - r, cy - arm], [cx + r, cy - arm], [cx + r, cy + arm], [cx - r, cy + arm]])
        bar2 = np.array([[cx - arm, cy - r], [cx + arm, cy - r], [cx + arm, cy + r], [cx - arm, cy + r]])
        for bar in (bar1, bar2):
            cv2.fillPoly(mask, [np.round(_rotated(bar, cx, cy, rot)).astype(np.int32)], 1)
    elif sh == "bar":  # long thin strokes, straight or bent once
        thick = max(1, int(r * rng.uniform(0.05, 0.25)))
        p0 = np.array([cx, cy])
        p1 = p0 + 2 * r * np.array([np.cos(rot), np.sin(rot)])
        pts = [p0, p1]
        if rng.random() < 0.4:
            turn = rot + rng.uniform(-1.5, 1.5)
            pts.append(p1 + r * np.array([np.cos(turn), np.sin(turn)]))
        cv2.polylines(mask, [np.round(np.array(pts)).astype(np.int32)], False, 1, thick)
    return mask


def render_generic(
    rng: np.random.Generator, size: tuple[int, int] = (96, 192)
) -> tuple[np.ndarray, np.ndarray]:
    """One corpus image: (BGR uint8 HxWx3, uint8 HxW class ids in [0, NUM_CLASSES))."""
    h, w = size
    family = int(rng.integers(len(TEXTURES)))
    img = _paint(rng, family, h, w)
    label = np.full((h, w), family * NUM_SHAPES, np.uint8)
    for _ in range(int(rng.integers(6, 29))):
        shape = int(rng.integers(1, NUM_SHAPES))
        mask = _shape_mask(rng, shape, h, w).astype(bool)
        if not mask.any():
            continue
        family = int(rng.integers(len(TEXTURES)))
        img[mask] = _paint(rng, family, h, w)[mask]
        label[mask] = family * NUM_SHAPES + shape
    return np.clip(img, 0, 255).astype(np.uint8), label


def corpus_rng(seed: int, index: int) -> np.random.Generator:
    """Independent stream per (seed, image index): the corpus is infinite and any image re-renders alone."""
    return np.random.default_rng([seed, 0x5EED, index])
