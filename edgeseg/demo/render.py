"""Turn (frame, labels) into the picture the user sees: colour overlay, mask or side-by-side, a legend of the
classes present and FPS / latency text in the corner.

Output buffers are allocated once per (frame shape, view) and reused, so a steady stream allocates
nothing per frame (jetson-inference does the same). The returned image is the renderer's own buffer: it
stays valid until the next `render` call, which is all the recorder and the window need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

View = Literal["overlay", "mask", "side-by-side"]
VIEWS: tuple[View, ...] = ("overlay", "mask", "side-by-side")
MAX_LEGEND_ENTRIES = 10

KEY_QUIT = frozenset({ord("q"), ord("Q"), 27})  # 27 = ESC
KEY_PAUSE = frozenset({ord(" ")})
KEY_NEXT_VIEW = frozenset({ord("v"), ord("V")})


def key_action(key: int) -> Literal["quit", "pause", "next_view"] | None:
    """Map a cv2.waitKey code to what the demo should do (-1 = no key)."""
    if key < 0:
        return None
    key &= 0xFF  # some GTK builds set modifier bits above the low byte
    if key in KEY_QUIT:
        return "quit"
    if key in KEY_PAUSE:
        return "pause"
    if key in KEY_NEXT_VIEW:
        return "next_view"
    return None


def next_view(view: View) -> View:
    return VIEWS[(VIEWS.index(view) + 1) % len(VIEWS)]


def fallback_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """Distinct, deterministic RGB colours for models whose metadata carries no palette."""
    rng = np.random.default_rng(12345)
    return [tuple(int(c) for c in rng.integers(40, 256, size=3)) for _ in range(num_classes)]


def palette_lut(palette_rgb: Sequence[Sequence[int]]) -> np.ndarray:
    """A (256, 1, 3) BGR lookup table; ids without a colour (and 255 = ignore) map to black."""
    if len(palette_rgb) > 255:
        raise ValueError(f"palette has {len(palette_rgb)} colours; at most 255 classes fit uint8 labels")
    lut = np.zeros((256, 1, 3), np.uint8)
    for i, (r, g, b) in enumerate(palette_rgb):
        lut[i, 0] = (b, g, r)
    return lut


def _text_scale(height: int) -> float:
    # Readable on a 64-pixel test clip and on a 1080p camera alike.
    return float(np.clip(height / 700.0, 0.3, 1.2))


class Renderer:
    def __init__(
        self,
        classes: Sequence[str],
        palette_rgb: Sequence[Sequence[int]],
        alpha: float = 0.5,
        view: View = "overlay",
        show_legend: bool = True,
        show_hud: bool = True,
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError("alpha must be in [0, 1]")
        if view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}")
        self.classes = list(classes)
        palette = list(palette_rgb) or fallback_palette(len(self.classes))
        if len(palette) < len(self.classes):
            palette += fallback_palette(len(self.classes))[len(palette) :]
        self.palette_rgb = palette
        self._lut = palette_lut(palette)
        # One single-channel table per B, G, R: three 1-channel cv2.LUT calls and a merge are about 1.5x
        # faster than GRAY2BGR + a 3-channel LUT, and 3x faster than numpy fancy indexing.
        self._channel_luts = [np.ascontiguousarray(self._lut[:, :, c]) for c in range(3)]
        self.alpha = alpha
        self.view: View = view
        self.show_legend = show_legend
        self.show_hud = show_hud
        self._key: tuple[int, int, str] | None = None
        self.allocations = 0  # how often buffers were (re)allocated: once per shape/view change

    def _buffers(self, h: int, w: int) -> None:
        key = (h, w, self.view)
        if key == self._key:
            return
        self._channels = [np.empty((h, w), np.uint8) for _ in range(3)]
        self._color = np.empty((h, w, 3), np.uint8)
        self._blend = np.empty((h, w, 3), np.uint8)
        self._out = np.empty((h, 2 * w if self.view == "side-by-side" else w, 3), np.uint8)
        self._key = key
        self.allocations += 1

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """Labels (h, w) uint8 -> BGR colour mask (the renderer's buffer)."""
        self._buffers(*labels.shape[:2])
        for lut, channel in zip(self._channel_luts, self._channels, strict=True):
            cv2.LUT(labels, lut, dst=channel)
        cv2.merge(self._channels, dst=self._color)
        return self._color

    def render(self, frame: np.ndarray, labels: np.ndarray, hud_lines: Sequence[str] = ()) -> np.ndarray:
        """Compose the current view for one BGR frame and its uint8 labels."""
        h, w = frame.shape[:2]
        if labels.shape[:2] != (h, w):  # a backend returned labels at another size: nearest keeps ids intact
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        if labels.dtype != np.uint8:
            labels = labels.astype(np.uint8)
        self._buffers(h, w)
        color = self.colorize(labels)
        if self.view == "mask":
            np.copyto(self._out, color)
        elif self.view == "overlay":
            cv2.addWeighted(frame, 1.0 - self.alpha, color, self.alpha, 0.0, dst=self._out)
        else:
            cv2.addWeighted(frame, 1.0 - self.alpha, color, self.alpha, 0.0, dst=self._blend)
            self._out[:, :w] = self._blend
            self._out[:, w:] = color
        hud_box = (0, 0)
        if self.show_hud and hud_lines:
            hud_box = self._draw_text_block(self._out, hud_lines, origin=(0, 0))
        if self.show_legend:
            self._draw_legend(self._out, labels, hud_box)
        return self._out

    def classes_present(self, labels: np.ndarray) -> list[int]:
        """Class ids in the frame, most pixels first (ignore / out-of-range ids left out)."""
        # calcHist: ~4x faster than np.bincount on a 512x1024 label map
        counts = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel()[: len(self.classes)]
        present = np.flatnonzero(counts)
        return [int(i) for i in present[np.argsort(-counts[present], kind="stable")]]

    def _draw_legend(self, image: np.ndarray, labels: np.ndarray, hud_box: tuple[int, int]) -> None:
        """Top-right; below the HUD when the two would collide; only as many rows as fit the height."""
        ids = self.classes_present(labels)[:MAX_LEGEND_ENTRIES]
        if not ids:
            return
        scale = _text_scale(image.shape[0])
        thickness = 1 if scale < 0.8 else 2
        (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        row = th + base + 4
        swatch = th + base
        width = max(
            cv2.getTextSize(self.classes[i], cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for i in ids
        )
        x0 = image.shape[1] - (swatch + 6 + width + 6)
        y0 = hud_box[1] + 2 if x0 <= hud_box[0] else 0
        ids = ids[: max(0, (image.shape[0] - y0 - 2) // row)]
        if not ids or x0 < 0:
            return
        cv2.rectangle(image, (x0, y0), (image.shape[1] - 1, y0 + row * len(ids) + 2), (0, 0, 0), cv2.FILLED)
        for k, cid in enumerate(ids):
            y = y0 + 2 + k * row
            b, g, r = (int(v) for v in self._lut[cid, 0])
            cv2.rectangle(image, (x0 + 3, y), (x0 + 3 + swatch, y + swatch), (b, g, r), cv2.FILLED)
            cv2.putText(
                image,
                self.classes[cid],
                (x0 + swatch + 8, y + th),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (255, 255, 255),
                thickness,
                cv2.LINE_AA,
            )

    @staticmethod
    def _draw_text_block(image: np.ndarray, lines: Sequence[str], origin: tuple[int, int]) -> tuple[int, int]:
        """White text on a black box; returns the box's bottom-right corner (x, y)."""
        scale = _text_scale(image.shape[0])
        thickness = 1 if scale < 0.8 else 2
        sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness) for t in lines]
        row = max(s[0][1] + s[1] for s in sizes) + 4
        width = max(s[0][0] for s in sizes) + 8
        x0, y0 = origin
        x1, y1 = x0 + width, y0 + row * len(lines) + 2
        cv2.rectangle(image, (x0, y0), (x1, y1), (0, 0, 0), cv2.FILLED)
        for k, text in enumerate(lines):
            cv2.putText(
                image,
                text,
                (x0 + 4, y0 + (k + 1) * row - 4),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (255, 255, 255),
                thickness,
                cv2.LINE_AA,
            )
        return x1, y1


def hud_lines(
    fps: float, inference_ms: float | None, latency_ms: float | None, backend: str, paused: bool = False
) -> list[str]:
    """The corner text: smoothed FPS, inference and end-to-end latency, backend."""
    first = f"{fps:.1f} FPS"
    if inference_ms is not None:
        first += f"  infer {inference_ms:.0f} ms"
    if latency_ms is not None:
        first += f"  latency {latency_ms:.0f} ms"
    return [first, backend + ("  [paused]" if paused else "")]
