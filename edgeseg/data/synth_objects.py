"""Things in the street: vehicles, people, two-wheelers, poles, signs, traffic lights, trees, walls, fences.

Each drawer projects a small 3-D model (boxes, profiles, discs) through the camera and paints it with
`Canvas` primitives; `place_objects` samples where they go and returns them as (depth, draw) pairs
that the renderer paints far to near.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeseg.data.synth_canvas import Camera, Canvas, Light, pick_color, scaled
from edgeseg.data.synth_styles import (
    BICYCLE,
    BUS,
    CAR,
    FENCE,
    LIGHT,
    POLE,
    SIGN,
    TRAIN,
    TRUCK,
    VEGETATION,
    WALL,
    DomainStyle,
)

RGBf = tuple[float, float, float]
Draw = Callable[[Canvas], None]
GLASS: RGBf = (0.16, 0.19, 0.23)
TYRE: RGBf = (0.06, 0.06, 0.07)
SKIN: tuple[RGBf, ...] = ((0.87, 0.72, 0.6), (0.62, 0.45, 0.33), (0.4, 0.28, 0.2))

# Vehicle models: (width, height, length) ranges and side/rear profiles as (along, up) fractions.
_SIZES = {
    CAR: ((1.7, 1.95), (1.35, 1.6), (3.9, 4.7)),
    TRUCK: ((2.3, 2.5), (2.9, 3.6), (6.5, 9.0)),
    BUS: ((2.45, 2.55), (3.0, 3.3), (10.5, 12.5)),
    TRAIN: ((2.5, 2.65), (3.3, 3.6), (24.0, 30.0)),
}
_CAR_SIDE = [
    (0.0, 0.2),
    (0.0, 0.55),
    (0.2, 0.6),
    (0.32, 1.0),
    (0.78, 1.0),
    (0.9, 0.6),
    (1.0, 0.55),
    (1.0, 0.2),
]
_CAR_REAR = [
    (0.0, 0.15),
    (0.0, 0.62),
    (0.13, 0.66),
    (0.2, 1.0),
    (0.8, 1.0),
    (0.87, 0.66),
    (1.0, 0.62),
    (1.0, 0.15),
]
_BOX = [(0.0, 0.1), (0.0, 1.0), (1.0, 1.0), (1.0, 0.1)]


def _side_pts(
    cam: Camera, x: float, z: float, length: float, h: float, prof: list
) -> list[tuple[float, float]]:
    return [cam.pt(x, v * h, z + u * length) for u, v in prof]


def _face_pts(cam: Camera, x0: float, w: float, z: float, h: float, prof: list) -> list[tuple[float, float]]:
    return [cam.pt(x0 + u * w, v * h, z) for u, v in prof]


def _rect(cam: Camera, x0: float, x1: float, y0: float, y1: float, z: float) -> list[tuple[float, float]]:
    return [cam.pt(x0, y0, z), cam.pt(x1, y0, z), cam.pt(x1, y1, z), cam.pt(x0, y1, z)]


def vehicle(
    cam: Camera,
    cls: int,
    x: float,
    z: float,
    size: tuple[float, float, float],
    color: RGBf,
    oncoming: bool,
    night: bool,
    sun: float,
) -> Draw:
    """A box-shaped vehicle seen from behind (or the front, if oncoming) and from its inner side."""
    w, h, length = size
    x0, x1 = x - w / 2, x + w / 2
    car = cls == CAR

    def draw(cv: Canvas) -> None:
        if sun > 0:  # cast shadow on the ground, offset towards the shaded side
            cv.shadow(
                [
                    cam.pt(x0 + 0.4, 0, z - 0.3),
                    cam.pt(x1 + 0.9, 0, z - 0.3),
                    cam.pt(x1 + 0.9, 0, z + length),
                    cam.pt(x0 + 0.4, 0, z + length),
                ],
                1.0 - sun,
            )
        side_x = x1 if x1 < -0.2 else (x0 if x0 > 0.2 else None)
        if side_x is not None:
            side_prof = _CAR_SIDE if car else _BOX
            cv.poly(_side_pts(cam, side_x, z, length, h, side_prof), cls, scaled(color, 0.8), z + length / 2)
            if cls == TRUCK:  # a lower cab at the far end, in another colour
                cv.poly(
                    _side_pts(cam, side_x, z + 0.74 * length, 0.26 * length, h * 0.8, _BOX),
                    cls,
                    scaled(color, 0.55),
                    z + length,
                )
            band = (0.62, 0.92) if car else (0.5, 0.85)
            if cls != TRUCK:
                lo, hi = (0.34, 0.86) if car else (0.06, 0.96)
                cv.poly(
                    _side_pts(
                        cam,
                        side_x,
                        z,
                        length,
                        h,
                        [(lo, band[0]), (lo, band[1]), (hi, band[1]), (hi, band[0])],
                    ),
                    cls,
                    GLASS,
                    z + length / 2,
                )
            r = 0.33 if car else 0.48
            for u in (0.18, 0.82) if car else (0.12, 0.3, 0.85):
                c = cam.pt(side_x, r, z + u * length)
                cv.circle(c, cam.px(r, z + u * length), cls, TYRE, z + u * length)
        cv.poly(_face_pts(cam, x0, w, z, h, _CAR_REAR if car else _BOX), cls, color, z)
        for u0 in (0.04, 0.78):  # wheels under the rear face
            cv.poly(_rect(cam, x0 + u0 * w, x0 + (u0 + 0.18) * w, 0.0, 0.16 * h, z), cls, TYRE, z)
        if cls in (TRAIN, BUS) or car:
            y0, y1 = (0.68, 0.95) if car else (0.55, 0.9)
            cv.poly(_rect(cam, x0 + 0.2 * w, x1 - 0.2 * w, y0 * h, y1 * h, z), cls, GLASS, z)
        lamp: RGBf = (1.0, 0.95, 0.8) if oncoming else (0.85, 0.05, 0.05)
        for u0 in (0.05, 0.83):
            pts = _rect(cam, x0 + u0 * w, x0 + (u0 + 0.12) * w, 0.36 * min(h, 1.6), 0.46 * min(h, 1.6), z)
            cv.poly(pts, cls, lamp, z, emit=lamp if night else None)
            if night:
                cx, cy = np.mean(pts, axis=0)
                cv.lights.append(
                    Light(
                        cx,
                        cy,
                        min(cam.px(1.2 if oncoming else 0.5, z), cv.w / 10),
                        lamp,
                        0.6 if oncoming else 0.3,
                    )
                )

    return draw


def person(
    cam: Camera,
    cls: int,
    x: float,
    z: float,
    height: float,
    shirt: RGBf,
    legs: RGBf,
    skin: RGBf,
    stride: float,
    base: float = 0.0,
) -> Draw:
    """A standing/walking person (or the upper body of a rider when `base` > 0)."""

    def draw(cv: Canvas) -> None:
        # Standing: hips at 53% and shoulders at 82% of the height; riding: hips on the seat.
        hip, sh = (0.53 * height, 0.82 * height) if base == 0.0 else (base, base + 0.3 * height)
        if base == 0.0:
            for dx, sgn in ((-0.09, -1), (0.09, 1)):
                foot = x + dx + sgn * stride * 0.18
                cv.poly(
                    [
                        cam.pt(x + dx - 0.07, hip, z),
                        cam.pt(x + dx + 0.07, hip, z),
                        cam.pt(foot + 0.07, 0, z),
                        cam.pt(foot - 0.07, 0, z),
                    ],
                    cls,
                    legs,
                    z,
                )
        else:  # rider: thighs forward, shins down to the pedals
            cv.poly(
                [
                    cam.pt(x - 0.12, hip, z),
                    cam.pt(x + 0.35, hip - 0.05, z),
                    cam.pt(x + 0.35, base + 0.1, z),
                    cam.pt(x + 0.22, base + 0.1, z),
                    cam.pt(x + 0.2, hip - 0.15, z),
                    cam.pt(x - 0.12, hip - 0.15, z),
                ],
                cls,
                legs,
                z,
            )
        cv.poly(
            [
                cam.pt(x - 0.2, sh, z),
                cam.pt(x + 0.2, sh, z),
                cam.pt(x + 0.16, hip, z),
                cam.pt(x - 0.16, hip, z),
            ],
            cls,
            shirt,
            z,
        )
        for dx in (-0.25, 0.2):
            cv.poly(
                [
                    cam.pt(x + dx, sh, z),
                    cam.pt(x + dx + 0.06, sh, z),
                    cam.pt(x + dx + 0.06 + stride * 0.1, hip + 0.05, z),
                    cam.pt(x + dx + stride * 0.1, hip + 0.05, z),
                ],
                cls,
                shirt,
                z,
            )
        cv.circle(cam.pt(x, sh + 0.1 * height, z), cam.px(0.11, z), cls, skin, z)

    return draw


def two_wheeler(cam: Camera, cls: int, x: float, z: float, color: RGBf, rider: Draw | None) -> Draw:
    """A bicycle or motorcycle seen from the side (wheels, frame/body), optionally with its rider."""
    r = 0.34 if cls == BICYCLE else 0.32
    base = 1.25 if cls == BICYCLE else 1.45

    def draw(cv: Canvas) -> None:
        back, front = cam.pt(x - base / 2, r, z), cam.pt(x + base / 2, r, z)
        rad = cam.px(r, z)
        if cls == BICYCLE:
            t = max(cam.px(0.05, z), 1.0)
            for c in (back, front):
                cv.circle(c, rad, cls, TYRE, z, thickness=int(round(t)))
            seat, bar, crank = cam.pt(x - 0.15, 0.85, z), cam.pt(x + 0.45, 0.95, z), cam.pt(x, 0.3, z)
            for a, b in ((back, seat), (seat, crank), (crank, back), (seat, bar), (bar, front), (crank, bar)):
                cv.line(a, b, cls, color, z, t)
        else:
            for c in (back, front):
                cv.circle(c, rad, cls, TYRE, z)
            cv.poly(
                [
                    cam.pt(x - 0.7, 0.55, z),
                    cam.pt(x - 0.2, 0.85, z),
                    cam.pt(x + 0.5, 0.95, z),
                    cam.pt(x + 0.75, 0.6, z),
                    cam.pt(x + 0.3, 0.3, z),
                    cam.pt(x - 0.4, 0.3, z),
                ],
                cls,
                color,
                z,
            )
        if rider is not None:
            rider(cv)

    return draw


def street_lamp(cam: Camera, x: float, z: float, side: int, height: float, color: RGBf, night: bool) -> Draw:
    def draw(cv: Canvas) -> None:
        cv.poly(_rect(cam, x - 0.09, x + 0.09, 0.0, height, z), POLE, color, z)
        tip = x - side * 1.6
        cv.poly(_rect(cam, min(x, tip), max(x, tip), height - 0.12, height, z), POLE, color, z)
        head = _rect(cam, tip - 0.25, tip + 0.25, height - 0.3, height - 0.1, z)
        warm = (1.0, 0.85, 0.55)
        cv.poly(head, POLE, scaled(color, 0.7), z, emit=warm if night else None)
        if night:
            cx, cy = cam.pt(tip, height - 0.2, z)
            cv.lights.append(Light(cx, cy, min(cam.px(0.8, z), cv.w / 16), warm, 0.5))
            gx, gy = cam.pt(tip, 0.0, z)  # pool of light on the ground under the lamp
            cv.lights.append(Light(gx, gy, min(cam.px(3.0, z), cv.w / 6), warm, 0.45))

    return draw


def traffic_sign(cam: Camera, x: float, z: float, colors: tuple[RGBf, RGBf], shape: int, pole: RGBf) -> Draw:
    def draw(cv: Canvas) -> None:
        top = 2.3
        cv.poly(_rect(cam, x - 0.04, x + 0.04, 0.0, top, z), POLE, pole, z)
        outer, inner = colors
        if shape == 0:  # round
            c = cam.pt(x, top + 0.3, z)
            cv.circle(c, cam.px(0.33, z), SIGN, outer, z)
            cv.circle(c, cam.px(0.24, z), SIGN, inner, z)
        elif shape == 1:  # triangle
            cv.poly(
                [cam.pt(x - 0.38, top, z), cam.pt(x + 0.38, top, z), cam.pt(x, top + 0.66, z)], SIGN, outer, z
            )
            cv.poly(
                [cam.pt(x - 0.24, top + 0.08, z), cam.pt(x + 0.24, top + 0.08, z), cam.pt(x, top + 0.5, z)],
                SIGN,
                inner,
                z,
            )
        else:  # rectangular information sign
            cv.poly(_rect(cam, x - 0.45, x + 0.45, top, top + 0.55, z), SIGN, outer, z)
            cv.poly(_rect(cam, x - 0.36, x + 0.36, top + 0.08, top + 0.47, z), SIGN, inner, z)

    return draw


def traffic_light(
    cam: Camera, x: float, z: float, housing: RGBf, pole: RGBf, state: int, night: bool, arm: float = 0.0
) -> Draw:
    """Pole with a three-lamp head; `arm` > 0 hangs the head over the road on a mast arm."""
    lamps: tuple[RGBf, ...] = ((1.0, 0.1, 0.05), (1.0, 0.7, 0.05), (0.1, 1.0, 0.4))

    def draw(cv: Canvas) -> None:
        top = 5.6 if arm else 3.4
        cv.poly(_rect(cam, x - 0.08, x + 0.08, 0.0, top, z), POLE, pole, z)
        hx = x + arm
        if arm:
            cv.poly(_rect(cam, min(x, hx), max(x, hx), top - 0.12, top, z), POLE, pole, z)
        y1 = top - (0.1 if arm else 0.0)
        cv.poly(_rect(cam, hx - 0.18, hx + 0.18, y1 - 0.95, y1, z), LIGHT, housing, z)
        for k, lamp in enumerate(lamps):
            on = k == state
            c = cam.pt(hx, y1 - 0.17 - 0.3 * k, z)
            cv.circle(
                c,
                cam.px(0.1, z),
                LIGHT,
                lamp if on else scaled(lamp, 0.25),
                z,
                emit=lamp if (on and night) else None,
            )
            if on and night:
                cv.lights.append(Light(c[0], c[1], min(cam.px(0.5, z), cv.w / 20), lamp, 0.4))

    return draw


def tree(cam: Camera, x: float, z: float, rng: np.random.Generator, leaf: RGBf, trunk: RGBf) -> Draw:
    h_trunk = rng.uniform(2.0, 3.5)
    blobs = [
        (
            x + rng.uniform(-1.2, 1.2),
            h_trunk + rng.uniform(0.3, 2.5),
            rng.uniform(1.0, 2.2),
            rng.uniform(0.8, 1.7),
            rng.uniform(0.8, 1.15),
        )
        for _ in range(int(rng.integers(3, 7)))
    ]

    def draw(cv: Canvas) -> None:
        cv.poly(_rect(cam, x - 0.15, x + 0.15, 0.0, h_trunk + 0.5, z), VEGETATION, trunk, z)
        for bx, by, rx, ry, k in blobs:
            cx, cy = cam.pt(bx, by, z)
            axes = (max(int(cam.px(rx, z)), 1), max(int(cam.px(ry, z)), 1))
            pts = _ellipse_pts(cx, cy, axes)
            cv.poly(pts, VEGETATION, scaled(leaf, k), z)

    return draw


def _ellipse_pts(cx: float, cy: float, axes: tuple[int, int], n: int = 20) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + axes[0] * np.cos(t), cy + axes[1] * np.sin(t)], axis=1)


def wall_or_fence(cam: Camera, cls: int, x: float, z0: float, z1: float, height: float, color: RGBf) -> Draw:
    """A wall or fence segment running along the street at |X| = x; fences are see-through bars."""

    def draw(cv: Canvas) -> None:
        pts = [cam.pt(x, 0, z0), cam.pt(x, 0, z1), cam.pt(x, height, z1), cam.pt(x, height, z0)]
        if cls == WALL:
            cv.poly(pts, WALL, color, z0)
            cv.poly(
                [
                    cam.pt(x, height * 0.9, z0),
                    cam.pt(x, height * 0.9, z1),
                    cam.pt(x, height, z1),
                    cam.pt(x, height, z0),
                ],
                WALL,
                scaled(color, 1.2),
                z0,
            )
            return
        before = cv.albedo.copy()
        cv.poly(pts, FENCE, color, z0)
        # Bars every 0.25 m along the fence; between them 55% of the background shows through.
        cols = np.arange(cv.w, dtype=np.float32) + 0.5
        with np.errstate(divide="ignore", invalid="ignore"):
            zc = cam.f * x / (cols - cam.xv)
        gap_cols = np.flatnonzero((zc > 0) & (np.mod(zc, 0.25) > 0.09))
        region = cv.label[:, gap_cols] == FENCE
        rows, sub = np.nonzero(region & (cv.depth[:, gap_cols] == np.float32(z0)))
        xs = gap_cols[sub]
        cv.albedo[rows, xs] = 0.55 * before[rows, xs] + 0.45 * np.asarray(color, np.float32)

    def draw_any(cv: Canvas) -> None:
        draw(cv)
        # The segment recedes: give its pixels their true per-column depth (fog needs it).
        cols = np.arange(cv.w, dtype=np.float32) + 0.5
        with np.errstate(divide="ignore", invalid="ignore"):
            zc = (cam.f * x / (cols - cam.xv)).astype(np.float32)
        rows, xs = np.nonzero((cv.label == cls) & (cv.depth == np.float32(z0)))
        cv.depth[rows, xs] = np.clip(zc[xs], z0, z1)

    return draw_any


def pick(rng: np.random.Generator, style: DomainStyle, cls: int) -> RGBf:
    return pick_color(rng, style.looks[cls])


def skin(rng: np.random.Generator) -> RGBf:
    return SKIN[int(rng.integers(len(SKIN)))]
