"""Reading images and label maps the way datasets ship them; writing PNGs atomically.

OpenCV only (no Pillow): the device image carries OpenCV. OpenCV expands palette ("P" mode) PNGs -
GTA5 and Mapillary labels - to colour, so for those we read the PLTE chunk ourselves and invert the
palette, which is exact whenever the colours a file uses are unambiguous (checked, never assumed).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from edgeseg.data.labels import LabelMap
from edgeseg.errors import DatasetError
from edgeseg.io_utils import write_bytes_atomic

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_image(path: Path) -> np.ndarray:
    """BGR uint8 HxWx3; an unreadable file is a DatasetError naming it."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}: the file is missing, truncated or not an image")
    return image


def png_palette(path: Path) -> np.ndarray | None:
    """The (N, 3) RGB palette of an indexed-colour PNG, or None for any other PNG/file."""
    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return None
        palette = None
        color_type = None
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            length, kind = struct.unpack(">I4s", header)
            data = f.read(length)
            f.read(4)  # CRC
            if kind == b"IHDR":
                color_type = data[9]
                if color_type != 3:
                    return None
            elif kind == b"PLTE":
                palette = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
            elif kind in (b"IDAT", b"IEND"):
                return palette if color_type == 3 else None


def _palette_indices(path: Path, palette: np.ndarray, label_map: LabelMap) -> np.ndarray:
    """Recover palette indices from OpenCV's colour expansion of an indexed PNG."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read label {path}: the file is missing, truncated or not a PNG")
    codes = (bgr[..., 2].astype(np.int32) << 16) | (bgr[..., 1].astype(np.int32) << 8) | bgr[..., 0]
    pal_codes = (palette[:, 0].astype(np.int32) << 16) | (palette[:, 1].astype(np.int32) << 8) | palette[:, 2]
    order = np.argsort(pal_codes, kind="stable")  # stable: the first index of a repeated colour wins
    sorted_codes = pal_codes[order]
    pos = np.clip(np.searchsorted(sorted_codes, codes), 0, len(order) - 1)
    if not np.array_equal(sorted_codes[pos], codes):
        raise DatasetError(f"label {path}: pixel colours not in its own palette; the file is corrupt")
    indices = order[pos]
    # A colour shared by several palette entries is only a problem if those entries mean different
    # classes (e.g. Cityscapes 'pole' and 'polegroup') and the colour is actually used.
    uniq, first = np.unique(sorted_codes, return_index=True)
    for code, start in zip(uniq, first, strict=True):
        same = order[start : start + int(np.sum(sorted_codes == code))]
        same = same[same < len(label_map.lut)]
        if len(set(label_map.lut[same].tolist())) > 1 and np.any(codes == code):
            raise DatasetError(
                f"label {path}: palette colour {tuple(palette[same[0]])} is shared by ids {same.tolist()}"
                " that map to different classes; re-save the labels as grayscale id PNGs"
            )
    return indices


def read_raw_label(path: Path, label_map: LabelMap, channel: int | None = None) -> np.ndarray:
    """The dataset's own ids as an HxW integer array (grayscale, 16-bit, or palette PNG)."""
    palette = png_palette(path) if path.suffix.lower() == ".png" and path.is_file() else None
    if palette is not None:
        return _palette_indices(path, palette, label_map)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"cannot read label {path}: the file is missing, truncated or not an image")
    if raw.ndim == 3:
        if channel is None:
            raise DatasetError(
                f"label {path} has {raw.shape[2]} channels; expected a single-channel id image"
            )
        raw = raw[..., channel]
    return raw


def decode_label(raw: np.ndarray, label_map: LabelMap, path: Path) -> np.ndarray:
    """Raw ids -> uint8 trainIds; any id outside the dataset's range is an error naming the file."""
    size = len(label_map.lut)
    counts = np.bincount(raw.ravel(), minlength=size)
    if len(counts) > size or np.any(counts[:size][~label_map.valid]):
        present = np.flatnonzero(counts)
        bad = [int(v) for v in present if v >= size or not label_map.valid[v]]
        raise DatasetError(
            f"label {path} holds ids {bad[:8]} outside the {label_map.name} id range; "
            "check --dataset matches the files (or re-create the label PNGs)"
        )
    return label_map.lut[raw]


def read_label(path: Path, label_map: LabelMap, channel: int | None = None) -> np.ndarray:
    """A label file -> HxW uint8 trainIds (255 = ignore)."""
    return decode_label(read_raw_label(path, label_map, channel), label_map, path)


def encode_png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    if not ok:  # cv2 only fails here on unsupported dtypes/shapes: a programming error
        raise ValueError(f"cannot PNG-encode array of shape {array.shape} and dtype {array.dtype}")
    return buf.tobytes()


def write_png(path: Path, array: np.ndarray) -> None:
    """Atomically write a PNG (uint8 gray/BGR or uint16)."""
    write_bytes_atomic(path, encode_png(array))


def encode_palette_png(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """A minimal indexed-colour PNG writer (filter 0): what GTA5/Mapillary-style labels look like.

    OpenCV cannot write palette PNGs; tests and fixtures use this to reproduce the real files.
    """
    if indices.dtype != np.uint8 or indices.ndim != 2:
        raise ValueError("palette PNG needs a 2-D uint8 index array")
    h, w = indices.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + indices[y].tobytes() for y in range(h))
    return (
        _PNG_SIGNATURE
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
        + chunk(b"PLTE", np.asarray(palette, dtype=np.uint8).reshape(-1).tobytes())
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
