"""Frame sources for the demo, one code path for every kind, chosen from a URI-like string.

    0 / 1            camera index (live)
    /dev/video0      V4L2 device (live)
    clip.mp4         video file (every frame, in order)
    frames/          folder of images, sorted by name (every frame, in order)
    image.png        a single image (one frame)
    rtsp://... http(s)://...   network stream (live)
    csi://0          Jetson CSI camera through a GStreamer pipeline with nvarguscamerasrc (live)

Live sources are read "newest frame wins" by the pipeline; files and folders are read exhaustively.
Everything here is torch-free: OpenCV and numpy only.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from edgeseg.errors import SourceError

SourceKind = Literal["camera", "v4l2", "file", "folder", "image", "stream", "csi"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mkv", ".avi", ".mov", ".webm", ".ts", ".mpg", ".mpeg"})
_HELP = (
    "give a camera index (0), /dev/videoN, a video file, an image folder, an rtsp:// or http(s):// URL, "
    "or csi://0"
)


@dataclass(frozen=True)
class SourceSpec:
    """What the user asked for, parsed; `target` is what OpenCV (or FolderCapture) opens."""

    uri: str
    kind: SourceKind
    target: str | int
    live: bool

    @property
    def label(self) -> str:
        """Name for messages: URLs without user:password."""
        return re.sub(r"//[^/@]*@", "//***@", self.uri)


class Capture(Protocol):
    """The part of cv2.VideoCapture the pipeline uses (FolderCapture and test fakes implement it too)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


def parse_source(uri: str) -> SourceSpec:
    """Classify a source string; raises SourceError (one line) for paths that do not exist."""
    text = uri.strip()
    if not text:
        raise SourceError(f"empty --source: {_HELP}")
    if text.isdigit():
        return SourceSpec(text, "camera", int(text), live=True)
    lower = text.lower()
    if lower.startswith("csi://"):
        sensor = text[len("csi://") :] or "0"
        if not sensor.isdigit():
            raise SourceError(f"source '{text}': the CSI sensor id must be a number, e.g. csi://0")
        return SourceSpec(text, "csi", int(sensor), live=True)
    if lower.startswith(STREAM_SCHEMES):
        # http(s)://host/clip.mp4 is a file served over the network: every frame, in order, no reconnects.
        # Anything else (rtsp://, an MJPEG endpoint) is a live stream.
        served_file = (
            lower.startswith(("http://", "https://"))
            and Path(lower.split("?", 1)[0]).suffix in VIDEO_SUFFIXES
        )
        return SourceSpec(text, "stream", text, live=not served_file)
    if lower.startswith("file://"):
        text = text[len("file://") :]
    path = Path(text).expanduser()
    if re.fullmatch(r"/dev/video\d+", str(path)):
        if not path.exists():
            raise SourceError(f"source '{uri}': no such device (is the camera plugged in? `ls /dev/video*`)")
        return SourceSpec(uri, "v4l2", str(path), live=True)
    if path.is_dir():
        return SourceSpec(uri, "folder", str(path), live=False)
    if path.is_file():
        kind: SourceKind = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "file"
        return SourceSpec(uri, kind, str(path), live=False)
    raise SourceError(f"source '{uri}' does not exist: {_HELP}")


def opencv_build_info() -> str:
    return cv2.getBuildInformation()


def opencv_has_gstreamer(build_info: str | None = None) -> bool:
    info = opencv_build_info() if build_info is None else build_info
    return re.search(r"^\s*GStreamer:\s*YES", info, re.MULTILINE) is not None


def opencv_has_gui(build_info: str | None = None) -> bool:
    """False for the opencv-python-headless wheels ('GUI: NONE'), where cv2.imshow raises."""
    info = opencv_build_info() if build_info is None else build_info
    match = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    return match is None or match.group(1).upper() != "NONE"


def csi_pipeline(sensor_id: int, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """GStreamer pipeline for a Jetson CSI camera: NVMM capture -> BGR frames in an appsink.

    `drop=true max-buffers=1` keeps only the newest frame inside GStreamer too, so a slow model never
    sees a backlog (the same policy the pipeline applies one level up).
    """
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, framerate=(fraction){fps}/1 ! "
        "nvvidconv ! video/x-raw, format=(string)BGRx ! videoconvert ! video/x-raw, format=(string)BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )


def check_csi_support(spec: SourceSpec, build_info: str | None = None) -> None:
    if not opencv_has_gstreamer(build_info):
        raise SourceError(
            f"source '{spec.uri}' needs OpenCV built with GStreamer, and this OpenCV {cv2.__version__} has none: "
            "on a Jetson use the JetPack system OpenCV (apt install python3-opencv, or the edgeseg Jetson "
            "container) and `pip uninstall opencv-python opencv-python-headless` so the pip wheel does not "
            "shadow it"
        )


class FolderCapture:
    """A folder of images (or one image) read like a video: sorted by file name, unreadable files fail."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = paths
        self._next = 0

    @classmethod
    def open(cls, spec: SourceSpec) -> FolderCapture:
        root = Path(str(spec.target))
        if root.is_file():
            return cls([root])
        paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise SourceError(
                f"source folder '{spec.uri}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        return cls(paths)

    def __len__(self) -> int:
        return len(self._paths)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._next >= len(self._paths):
            return False, None
        path = self._paths[self._next]
        self._next += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot decode image '{path}': the file is corrupt or not an image")
        return True, image

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(len(self._paths))
        return 0.0

    def release(self) -> None:
        self._next = len(self._paths)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV prints its own WARN lines when an open fails; we print one clear line instead."""
    from cv2.utils import logging as cvlog

    level = cvlog.getLogLevel()
    cvlog.setLogLevel(cvlog.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cvlog.setLogLevel(level)


def open_capture(spec: SourceSpec) -> Capture:
    """Open a source; raises SourceError with what failed and what to try."""
    if spec.kind in ("folder", "image"):
        return FolderCapture.open(spec)
    if spec.kind == "csi":
        check_csi_support(spec)
        args: tuple = (csi_pipeline(int(spec.target)), cv2.CAP_GSTREAMER)
    elif spec.kind == "camera":
        # V4L2 explicitly on Linux: the FFMPEG backend cannot open camera indices in pip wheels.
        args = (int(spec.target), cv2.CAP_V4L2) if sys.platform.startswith("linux") else (int(spec.target),)
    elif spec.kind == "v4l2":
        args = (str(spec.target), cv2.CAP_V4L2)
    elif spec.kind == "stream":
        args = (str(spec.target), cv2.CAP_FFMPEG)
    else:
        args = (str(spec.target),)
    with _quiet_opencv():
        cap = cv2.VideoCapture(*args)
        opened = cap.isOpened()
    if not opened:
        cap.release()
        raise SourceError(_open_failure_message(spec))
    if spec.live:
        # Ask the driver for a 1-frame buffer (honoured by V4L2 and some others): fresher frames.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return cap


def _open_failure_message(spec: SourceSpec) -> str:
    if spec.kind == "camera":
        return (
            f"cannot open camera {spec.target}: no such camera or it is busy "
            "(`ls /dev/video*`; close other programs using it)"
        )
    if spec.kind == "v4l2":
        return (
            f"cannot open {spec.target}: the device exists but V4L2 refused it (busy, or no permission: "
            "add yourself to the 'video' group)"
        )
    if spec.kind == "stream":
        hint = (
            " (try OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp)"
            if spec.uri.lower().startswith("rtsp")
            else ""
        )
        return f"cannot open stream '{spec.label}': unreachable, wrong URL or credentials{hint}"
    if spec.kind == "csi":
        return (
            f"cannot open CSI camera {spec.target} through GStreamer: is nvargus-daemon running and the "
            "camera connected? (`gst-launch-1.0 nvarguscamerasrc num-buffers=1 ! fakesink`)"
        )
    ffmpeg = "with" if re.search(r"FFMPEG:\s*YES", opencv_build_info()) else "WITHOUT"
    return (
        f"cannot open video '{spec.uri}': OpenCV ({ffmpeg} FFMPEG) cannot decode it; re-encode it "
        "(ffmpeg -i IN -c:v libx264 out.mp4) or extract frames to a folder"
    )


def source_fps(cap: Capture, default: float = 30.0) -> float:
    """The source's nominal frame rate (for recordings), or `default` when it does not say."""
    get = getattr(cap, "get", None)
    fps = float(get(cv2.CAP_PROP_FPS)) if get is not None else 0.0
    return fps if 1.0 <= fps <= 240.0 else default


def source_frame_count(cap: Capture) -> int | None:
    get = getattr(cap, "get", None)
    count = int(get(cv2.CAP_PROP_FRAME_COUNT)) if get is not None else 0
    return count if count > 0 else None


def describe_environment() -> dict[str, object]:
    """OpenCV facts worth putting in the stats file (why a source or window did or did not work)."""
    info = opencv_build_info()
    return {
        "opencv": cv2.__version__,
        "gstreamer": opencv_has_gstreamer(info),
        "gui": opencv_has_gui(info),
        "display": bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
    }
