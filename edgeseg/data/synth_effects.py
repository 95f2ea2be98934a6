"""Image formation for the synthetic scenes: class textures, lighting, weather and the camera.

All operations are whole-image numpy/OpenCV passes on float32 RGB in 0..1 and never touch labels.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.data.synth_background import noise_field
from edgeseg.data.synth_canvas import Canvas
from edgeseg.data.synth_styles import ROAD, SIDEWALK, DomainStyle, Effects


def apply_textures(cv: Canvas, style: DomainStyle, rng: np.random.Generator) -> np.ndarray:
    """Albedo modulated per class by the domain's texture (grain / fine / coarse blotches)."""
    h, w = cv.h, cv.w
    grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.6) * 1.6
    fields = np.stack(
        [grain, noise_field(rng, h, w, max(w // 96, 2)), noise_field(rng, h, w, max(w // 16, 2))]
    )
    amp = np.zeros(256, np.float32)
    scale = np.zeros(256, np.int64)
    for cls, look in style.looks.items():
        amp[cls], scale[cls] = look.tex_amp, look.tex_scale
    sel = scale[cv.label]
    tex = np.take_along_axis(fields, sel[None], axis=0)[0]
    factor = np.clip(1.0 + amp[cv.label] * tex, 0.3, 1.8)
    return cv.albedo * factor[..., None]


def _light_map(cv: Canvas, ambient: float) -> np.ndarray:
    """Irradiance from the scene's lights: Gaussian pools, computed at quarter resolution."""
    s = 4
    hs, ws = max(cv.h // s, 1), max(cv.w // s, 1)
    light = np.full((hs, ws, 3), ambient, np.float32)
    yy, xx = np.mgrid[0:hs, 0:ws].astype(np.float32)
    for lt in cv.lights:
        r = max(lt.radius / s, 0.7)
        x0, x1 = int(max(lt.x / s - 3 * r, 0)), int(min(lt.x / s + 3 * r + 1, ws))
        y0, y1 = int(max(lt.y / s - 3 * r, 0)), int(min(lt.y / s + 3 * r + 1, hs))
        if x0 >= x1 or y0 >= y1:
            continue
        d2 = (xx[y0:y1, x0:x1] - lt.x / s) ** 2 + (yy[y0:y1, x0:x1] - lt.y / s) ** 2
        light[y0:y1, x0:x1] += (
            lt.strength * np.exp(-d2 / (2 * r * r))[..., None] * np.asarray(lt.color, np.float32)
        )
    light = np.minimum(light, 1.6)  # lights saturate rather than add up without bound
    return cv2.resize(light, (cv.w, cv.h), interpolation=cv2.INTER_LINEAR)


def illuminate(cv: Canvas, img: np.ndarray, eff: Effects, rng: np.random.Generator) -> np.ndarray:
    img = img * cv.shade[..., None]
    if not eff.night:
        return img
    ambient = float(rng.uniform(0.08, 0.16))
    light = _light_map(cv, ambient)
    # Lit surfaces, self-luminous lamps/windows, and a faint halo around lights scattered in the air.
    return img * light + cv.emit + 0.05 * (light - ambient)


def fog(img: np.ndarray, depth: np.ndarray, visibility: float, color: tuple[int, int, int]) -> np.ndarray:
    """Koschmieder's law: transmission exp(-beta d), beta = 3/visibility (5% contrast at `visibility`)."""
    t = np.exp(-(3.0 / visibility) * np.minimum(depth, 1e3))[..., None]
    air = np.asarray(color, np.float32) / 255.0
    return img * t + air * (1.0 - t)


def wet_reflections(img: np.ndarray, label: np.ndarray, horizon: float, strength: float) -> np.ndarray:
    """Mirror the scene about the horizon into road/sidewalk, smeared vertically like a wet street."""
    h = img.shape[0]
    rows = np.arange(h)
    mirror = np.clip((2 * horizon - rows).astype(np.int64), 0, h - 1)
    refl = cv2.blur(img[mirror], (3, 15))
    wet = np.isin(label, (ROAD, SIDEWALK)).astype(np.float32)
    grazing = np.clip(1.0 - (rows - horizon) / max(h - horizon, 1.0), 0.15, 1.0).astype(np.float32)[:, None]
    k = (strength * wet * grazing)[..., None]
    return img * (1.0 - k) + refl * k


def rain(img: np.ndarray, rng: np.random.Generator, density: float) -> np.ndarray:
    """Slanted semi-transparent streaks plus a few out-of-focus drops on the lens."""
    h, w = img.shape[:2]
    k = w / 512.0
    layer = np.zeros((h, w), np.float32)
    n = int(density * h * w / 260)
    xs, ys = rng.uniform(0, w, n), rng.uniform(0, h, n)
    lengths = rng.uniform(6, 20, n) * k
    slope = rng.uniform(-0.35, -0.1)
    for x, y, length in zip(xs, ys, lengths, strict=True):
        cv2.line(
            layer,
            (int(x), int(y)),
            (int(x + slope * length), int(y + length)),
            float(rng.uniform(0.4, 1.0)),
            1,
        )
    layer = cv2.GaussianBlur(layer, (0, 0), 0.7)[..., None]
    img = img * (1.0 - 0.3 * layer) + 0.85 * 0.3 * layer
    blurred = cv2.GaussianBlur(img, (0, 0), 6.0 * k)
    for _ in range(int(rng.integers(2, 7))):
        mask = np.zeros((h, w), np.float32)
        cv2.circle(
            mask, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), int(rng.uniform(8, 22) * k), 1.0, -1
        )
        mask = cv2.GaussianBlur(mask, (0, 0), 2.0)[..., None]
        img = img * (1 - mask) + (blurred * 1.05) * mask
    return img


def camera(img: np.ndarray, eff: Effects, rng: np.random.Generator) -> np.ndarray:
    """Colour response, optics and sensor: saturation/contrast, blur, vignetting, noise."""
    h, w = img.shape[:2]
    gray = img.mean(axis=2, keepdims=True)
    img = gray + eff.saturation * (img - gray)
    img = (img - 0.5) * eff.contrast + 0.5
    img = img * eff.brightness
    sigma = rng.uniform(*eff.blur) * w / 512.0
    if sigma > 0.2:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if eff.vignette > 0:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        img = img * (1.0 - eff.vignette * 0.5 * r2)[..., None]
    noise = rng.uniform(*eff.noise) / 255.0
    if noise > 0:
        img = img + noise * rng.standard_normal(img.shape).astype(np.float32)
    return img


def finish(cv: Canvas, style: DomainStyle, rng: np.random.Generator, horizon: float) -> np.ndarray:
    """Canvas -> BGR uint8 image through the domain's full image-formation chain."""
    eff = style.effects
    img = apply_textures(cv, style, rng)
    img = illuminate(cv, img, eff, rng)
    if eff.wet_road > 0:
        img = wet_reflections(img, cv.label, horizon, eff.wet_road)
    if eff.fog_visibility is not None:
        img = fog(img, cv.depth, float(rng.uniform(*eff.fog_visibility)), eff.fog_color)
    if eff.rain > 0:
        img = rain(img, rng, eff.rain)
    img = camera(img.astype(np.float32), eff, rng)
    rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
