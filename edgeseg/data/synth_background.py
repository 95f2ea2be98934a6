"""The static street: sky, ground (road, sidewalk, terrain, markings) and building facades.

These are vectorised over pixels by casting each pixel's ray onto the ground plane or a facade
plane, so textures (lane dashes, paving, windows) are in world coordinates and perspective-correct
at the cost of a few whole-image numpy operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.data.synth_canvas import FAR, Camera, Canvas, pick_color, scaled
from edgeseg.data.synth_styles import (
    BUILDING,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    VEGETATION,
    DomainStyle,
)


@dataclass
class Street:
    """One sampled street layout (metres)."""

    road_l: float
    road_r: float
    sidewalk: float
    setback: tuple[float, float]  # left, right
    buildings: tuple[bool, bool]  # left, right: facades or park
    z_end: float
    intersection: tuple[float, float] | None
    tram_x: float | None
    lanes: list[tuple[float, int]]  # (lane centre X, +1 driving away / -1 oncoming)

    def edge(self, side: int) -> float:
        """|X| of the road edge on side -1 (left) or +1 (right)."""
        return self.road_l if side < 0 else self.road_r

    def facade(self, side: int) -> float:
        return self.edge(side) + self.sidewalk + self.setback[0 if side < 0 else 1]

    def in_intersection(self, z: float, margin: float = 0.0) -> bool:
        return (
            self.intersection is not None
            and self.intersection[0] - margin <= z <= self.intersection[1] + margin
        )


def sample_street(rng: np.random.Generator, style: DomainStyle) -> Street:
    lay = style.layout
    half = rng.uniform(*lay.road_half)
    # The camera drives in a right-hand lane: more road to the left (oncoming lanes) than to the right.
    road_r = max(1.8, half * rng.uniform(0.35, 0.6))
    road_l = max(2.0, 2 * half - road_r)
    lanes = [(0.0, 1)]
    if road_r > 4.6:
        lanes.append((3.2, 1))
    x = -3.3
    while x - 1.2 > -road_l:
        lanes.append((x, -1))
        x -= 3.3
    z_end = rng.uniform(55.0, 95.0)
    inter = None
    if rng.random() < lay.intersection_prob:
        z0 = rng.uniform(14.0, z_end * 0.6)
        inter = (z0, z0 + rng.uniform(9.0, 14.0))
    oncoming = [lx for lx, d in lanes if d < 0]
    tram_x = oncoming[0] if oncoming and rng.random() < style.layout.train_prob else None
    return Street(
        road_l=road_l,
        road_r=road_r,
        sidewalk=rng.uniform(*lay.sidewalk),
        setback=(float(rng.uniform(*lay.setback)), float(rng.uniform(*lay.setback))),
        buildings=(bool(rng.random() < lay.building_prob), bool(rng.random() < lay.building_prob)),
        z_end=z_end,
        intersection=inter,
        tram_x=tram_x,
        lanes=lanes,
    )


def noise_field(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth unit-variance noise with blobs of about `cell` pixels (bicubic-upsampled white noise)."""
    import cv2

    if cell <= 1:
        n = rng.standard_normal((h, w)).astype(np.float32)
    else:
        small = rng.standard_normal((max(h // cell, 2) + 1, max(w // cell, 2) + 1)).astype(np.float32)
        n = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return (n - n.mean()) / (n.std() + 1e-6)


def draw_sky(cv: Canvas, cam: Camera, style: DomainStyle, rng: np.random.Generator) -> None:
    top = np.asarray(style.sky[0], np.float32) / 255.0
    bottom = np.asarray(style.sky[1], np.float32) / 255.0
    t = np.clip(np.arange(cv.h, dtype=np.float32) / max(cam.yh, 1.0), 0.0, 1.0)[:, None, None]
    sky = top * (1 - t) + bottom * t
    sky = np.broadcast_to(sky, (cv.h, cv.w, 3)).copy()
    if style.clouds > 0:
        clouds = np.clip(noise_field(rng, cv.h, cv.w, max(cv.w // 8, 2)) - 0.3, 0.0, None)[..., None]
        sky = sky + style.clouds * 0.35 * clouds * (1.0 - sky)
    cv.albedo[:] = sky
    cv.label[:] = SKY
    cv.depth[:] = FAR


def draw_ground(cv: Canvas, cam: Camera, st: Street, style: DomainStyle, rng: np.random.Generator) -> None:
    y0 = int(np.floor(cam.yh)) + 1
    if y0 >= cv.h:
        return
    ys = np.arange(y0, cv.h, dtype=np.float32) + 0.5
    Z = (cam.f * cam.cam_h / np.maximum(ys - cam.yh, 1e-3))[:, None]
    X = (np.arange(cv.w, dtype=np.float32)[None, :] + 0.5 - cam.xv) * Z / cam.f
    looks = style.looks
    c_road, c_walk = pick_color(rng, looks[ROAD]), pick_color(rng, looks[SIDEWALK])
    c_terrain = pick_color(rng, looks[TERRAIN])

    label = np.full(X.shape, SIDEWALK, np.uint8)
    color = np.empty(X.shape + (3,), np.float32)
    color[:] = c_walk
    for side in (-1, 1):
        beyond = (X * side) > st.edge(side) + st.sidewalk
        verge = st.setback[0 if side < 0 else 1] > 0.8 or not st.buildings[0 if side < 0 else 1]
        if verge:
            label[beyond] = TERRAIN
            color[beyond] = c_terrain
    road = (-st.road_l <= X) & (st.road_r >= X)
    if st.intersection is not None:
        road |= (st.intersection[0] <= Z) & (st.intersection[1] >= Z)
    label[road] = ROAD
    color[road] = c_road

    # Paving joints and the curb: world-space patterns, faded out with distance to avoid moire.
    walk = label == SIDEWALK
    joints = ((np.mod(X, 0.9) < 0.07) | (np.mod(Z, 0.9) < 0.07)) & (Z < 25.0)
    color[walk & joints] *= 0.82
    curb = walk & (np.minimum(np.abs(X + st.road_l), np.abs(X - st.road_r)) < 0.25)
    color[curb] = scaled(c_walk, 1.2)

    # Lane markings: dashed lane separators, a solid edge line, a crosswalk before the intersection.
    paint = (0.95, 0.95, 0.92) if style.name == "source" else (0.78, 0.78, 0.74)
    marks = np.zeros(X.shape, bool)
    for sep in (-1.65, 1.6):
        if -st.road_l + 0.5 < sep < st.road_r - 0.5:
            marks |= (np.abs(X - sep) < 0.07) & (np.mod(Z, 9.0) < 4.0)
    marks |= np.abs(X - (st.road_r - 0.3)) < 0.06
    if st.intersection is not None:
        z0 = st.intersection[0]
        marks |= (z0 - 4.0 < Z) & (z0 - 0.8 > Z) & (np.mod(X, 1.2) < 0.6)
    marks &= road
    color[marks] = paint
    if st.tram_x is not None:
        rails = (np.abs(X - st.tram_x - 0.72) < 0.05) | (np.abs(X - st.tram_x + 0.72) < 0.05)
        color[rails & road] = (0.25, 0.25, 0.27)

    rows = slice(y0, cv.h)
    cv.albedo[rows] = color
    cv.label[rows] = label
    cv.depth[rows] = np.broadcast_to(Z, X.shape)


def _facade_rays(cam: Camera, w: int, side: int, dist: float) -> tuple[np.ndarray, np.ndarray]:
    """Columns on `side` and the depth at which their rays meet the facade plane |X| = dist."""
    xs = np.arange(w, dtype=np.float32) + 0.5
    dx = (xs - cam.xv) * side
    cols = np.flatnonzero(dx > 0.5)
    return cols, cam.f * dist / dx[cols]


def draw_facades(
    cv: Canvas,
    cam: Camera,
    st: Street,
    style: DomainStyle,
    rng: np.random.Generator,
    side: int,
    night: bool,
    sun: float,
) -> None:
    """Building blocks along one side (perspective-correct windows), or a tree line on park sides."""
    i = 0 if side < 0 else 1
    lay = style.layout
    if not st.buildings[i]:
        dist = st.facade(side) + rng.uniform(4.0, 10.0)
        cols, zf = _facade_rays(cam, cv.w, side, dist)
        top = 7.0 + 3.0 * np.sin(zf * rng.uniform(0.2, 0.5) + rng.uniform(0, 6)) + 2.0 * np.sin(zf * 1.3)
        _fill_surface(
            cv,
            cam,
            cols,
            zf,
            np.clip(top, 2.0, None),
            VEGETATION,
            pick_color(rng, style.looks[VEGETATION]),
            st.z_end,
            st,
        )
        return
    cols, zf = _facade_rays(cam, cv.w, side, st.facade(side))
    ends, z = [], 0.0
    while z < st.z_end:
        z += rng.uniform(*lay.block_length)
        ends.append(z)
    n = len(ends)
    starts = np.concatenate([[0.0], ends[:-1]])
    heights = rng.uniform(*lay.building_height, n)
    colors = np.array([pick_color(rng, style.looks[BUILDING]) for _ in range(n)], np.float32)
    colors *= 1.0 + sun * (0.5 if side < 0 else -0.5)  # one side in sunlight, the other in shade
    glass = np.array(
        [np.asarray(style.window[rng.integers(len(style.window))]) / 255.0 for _ in range(n)], np.float32
    )
    spacing = rng.uniform(2.4, 4.0, n)
    floor_h = rng.uniform(2.9, 3.6, n)
    win_w = rng.uniform(0.35, 0.65, n)
    block = np.minimum(np.searchsorted(np.asarray(ends), zf), n - 1)
    painted = _fill_surface(cv, cam, cols, zf, heights[block], BUILDING, None, st.z_end, st, colors[block])
    if painted is None:
        return
    ys, xs, yf, idx = painted
    b = block[idx]
    u = zf[idx] - starts[b]
    win = ((np.mod(u, spacing[b]) / spacing[b]) < win_w[b]) & (np.mod(yf, floor_h[b]) / floor_h[b] > 0.35)
    win &= (yf > 1.5) & (yf < heights[b] - 0.8)
    cv.albedo[ys[win], xs[win]] = glass[b[win]]
    if night:
        # Windows lit at random, decided per window cell so a window is lit as a whole.
        cell = (np.floor(u / spacing[b]) * 7919 + np.floor(yf / floor_h[b]) * 104729 + b * 15485863)[win]
        lit = np.mod(cell * 0.61803398875, 1.0) < 0.3
        cv.emit[ys[win][lit], xs[win][lit]] = (1.0, 0.78, 0.45)


def _fill_surface(
    cv: Canvas,
    cam: Camera,
    cols: np.ndarray,
    zf: np.ndarray,
    top: np.ndarray,
    cls: int,
    rgb: tuple[float, float, float] | None,
    z_end: float,
    st: Street,
    col_rgb: np.ndarray | None = None,
) -> tuple[np.ndarray, ...] | None:
    """Paint a vertical surface (facade/tree line) where it is nearer than what is there already.

    Returns the painted pixels (rows, columns), their height on the surface, and the index of their
    column in `cols` - what window patterns need.
    """
    keep = (zf <= z_end) & (zf > 0.5)
    if st.intersection is not None:
        keep &= ~((zf >= st.intersection[0]) & (zf <= st.intersection[1]))
    idx_kept = np.flatnonzero(keep)
    if idx_kept.size == 0:
        return None
    kc, kz = cols[idx_kept], zf[idx_kept]
    ys = np.arange(cv.h, dtype=np.float32)[:, None] + 0.5
    yf = cam.cam_h - (ys - cam.yh) * kz[None, :] / cam.f  # height of each pixel on the surface
    mask = (yf >= 0) & (yf <= top[idx_kept][None, :]) & (kz[None, :] < cv.depth[:, kc])
    rows, sub = np.nonzero(mask)
    xs = kc[sub]
    idx = idx_kept[sub]
    cv.albedo[rows, xs] = rgb if col_rgb is None else col_rgb[idx]
    cv.label[rows, xs] = cls
    cv.depth[rows, xs] = zf[idx]
    return rows, xs, yf[rows, sub], idx


def draw_skyline(cv: Canvas, cam: Camera, st: Street, style: DomainStyle, rng: np.random.Generator) -> None:
    """Buildings (or trees, between two park sides) closing the street at z_end."""
    z = st.z_end
    urban = any(st.buildings)
    x_world = (np.arange(cv.w, dtype=np.float32) + 0.5 - cam.xv) * z / cam.f
    edges = np.cumsum(rng.uniform(6.0, 18.0, 64)) - 200.0
    seg = np.clip(np.searchsorted(edges, x_world), 0, 63)
    lo, hi = style.layout.building_height
    heights = rng.uniform(lo, hi, 64) if urban else rng.uniform(6.0, 11.0, 64)
    cls = BUILDING if urban else VEGETATION
    colors = np.array([pick_color(rng, style.looks[cls]) for _ in range(64)], np.float32) * 0.9
    ys = np.arange(cv.h, dtype=np.float32)[:, None] + 0.5
    yf = cam.cam_h - (ys - cam.yh) * z / cam.f
    mask = (yf >= 0) & (yf <= heights[seg][None, :]) & (cv.depth > z)
    yy, xx = np.nonzero(mask)
    cv.albedo[yy, xx] = colors[seg[xx]]
    cv.label[yy, xx] = cls
    cv.depth[yy, xx] = z
