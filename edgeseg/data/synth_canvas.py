"""Drawing surface and pinhole camera for the procedural street scenes.

Every primitive is painted with the same integer polygon into the colour (albedo), label and depth
buffers, without anti-aliasing, so labels are pixel-exact by construction. Effects applied later
(blur, fog, noise) touch only the image, exactly as a real camera would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edgeseg.data.synth_styles import ClassLook

FAR = 1.0e4  # depth of the sky


@dataclass(frozen=True)
class Camera:
    """Forward-looking pinhole camera at height `cam_h` above a flat ground (X right, Y up, Z ahead)."""

    h: int
    w: int
    f: float
    yh: float  # horizon row
    xv: float  # vanishing-point column
    cam_h: float = 1.5

    def x(self, X: float | np.ndarray, Z: float | np.ndarray) -> float | np.ndarray:
        return self.xv + self.f * X / Z

    def y(self, Y: float | np.ndarray, Z: float | np.ndarray) -> float | np.ndarray:
        return self.yh + self.f * (self.cam_h - Y) / Z

    def pt(self, X: float, Y: float, Z: float) -> tuple[float, float]:
        return float(self.x(X, Z)), float(self.y(Y, Z))

    def px(self, size: float, Z: float) -> float:
        return self.f * size / Z


@dataclass
class Light:
    """A light for night scenes: screen position, radius (px), RGB colour 0..1, strength."""

    x: float
    y: float
    radius: float
    color: tuple[float, float, float]
    strength: float


@dataclass
class Canvas:
    h: int
    w: int
    albedo: np.ndarray = field(init=False)  # float32 RGB 0..1
    label: np.ndarray = field(init=False)  # uint8 trainIds
    depth: np.ndarray = field(init=False)  # float32 metres
    shade: np.ndarray = field(init=False)  # float32 multiplicative (cast shadows)
    emit: np.ndarray = field(init=False)  # float32 RGB emitted light (night: lamps, windows)
    lights: list[Light] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.albedo = np.zeros((self.h, self.w, 3), np.float32)
        self.label = np.full((self.h, self.w), 255, np.uint8)
        self.depth = np.full((self.h, self.w), FAR, np.float32)
        self.shade = np.ones((self.h, self.w), np.float32)
        self.emit = np.zeros((self.h, self.w, 3), np.float32)

    def poly(
        self,
        pts: list[tuple[float, float]] | np.ndarray,
        cls: int,
        rgb: tuple[float, float, float],
        z: float,
        emit: tuple[float, float, float] | None = None,
    ) -> None:
        """Opaque polygon of class `cls` at depth `z` (painter's order: callers draw far to near)."""
        p = [np.round(np.asarray(pts, np.float64)).astype(np.int32)]
        cv2.fillPoly(self.albedo, p, rgb)
        cv2.fillPoly(self.label, p, int(cls))
        cv2.fillPoly(self.depth, p, float(z))
        cv2.fillPoly(self.shade, p, 1.0)
        cv2.fillPoly(self.emit, p, emit or (0.0, 0.0, 0.0))

    def circle(
        self,
        center: tuple[float, float],
        radius: float,
        cls: int,
        rgb: tuple[float, float, float],
        z: float,
        emit: tuple[float, float, float] | None = None,
        thickness: int = -1,
    ) -> None:
        c = (int(round(center[0])), int(round(center[1])))
        r = max(int(round(radius)), 1)
        cv2.circle(self.albedo, c, r, rgb, thickness)
        cv2.circle(self.label, c, r, int(cls), thickness)
        cv2.circle(self.depth, c, r, float(z), thickness)
        cv2.circle(self.shade, c, r, 1.0, thickness)
        cv2.circle(self.emit, c, r, emit or (0.0, 0.0, 0.0), thickness)

    def line(
        self,
        a: tuple[float, float],
        b: tuple[float, float],
        cls: int,
        rgb: tuple[float, float, float],
        z: float,
        thickness: float,
    ) -> None:
        pa = (int(round(a[0])), int(round(a[1])))
        pb = (int(round(b[0])), int(round(b[1])))
        t = max(int(round(thickness)), 1)
        cv2.line(self.albedo, pa, pb, rgb, t)
        cv2.line(self.label, pa, pb, int(cls), t)
        cv2.line(self.depth, pa, pb, float(z), t)
        cv2.line(self.shade, pa, pb, 1.0, t)
        cv2.line(self.emit, pa, pb, (0.0, 0.0, 0.0), t)

    def shadow(self, pts: list[tuple[float, float]], factor: float) -> None:
        """Darken what is already drawn (a cast shadow); objects drawn later reset it."""
        p = [np.round(np.asarray(pts, np.float64)).astype(np.int32)]
        cv2.fillPoly(self.shade, p, float(factor))


def pick_color(rng: np.random.Generator, look: ClassLook) -> tuple[float, float, float]:
    """One object's colour: an anchor of the class's look, with brightness and tint jitter (RGB 0..1)."""
    base = np.asarray(look.colors[rng.integers(len(look.colors))], np.float32) / 255.0
    scale = 1.0 + look.jitter * rng.standard_normal()
    tint = 1.0 + 0.5 * look.jitter * rng.standard_normal(3)
    rgb = np.clip(base * scale * tint, 0.0, 1.0)
    return float(rgb[0]), float(rgb[1]), float(rgb[2])


def scaled(rgb: tuple[float, float, float], k: float) -> tuple[float, float, float]:
    return min(rgb[0] * k, 1.0), min(rgb[1] * k, 1.0), min(rgb[2] * k, 1.0)
