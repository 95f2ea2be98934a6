"""Where rendered frames go: a video recording and/or an on-screen window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

from edgeseg.demo.sources import opencv_has_gui
from edgeseg.errors import EdgesegError

_FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class RecordingError(EdgesegError):
    """The recording cannot be written (unsupported container, unwritable folder)."""


class DisplayError(EdgesegError):
    """No window can be shown (headless OpenCV build, or no display)."""


class VideoRecorder:
    """Writes the rendered stream with cv2.VideoWriter, atomically.

    Frames go to a hidden temp file next to the target and are renamed onto it in `close()`, so a killed
    run never leaves a truncated video under the final name. (The file is renamed in `close()`, not at the end
    of a `with` block, so io_utils.atomic_path does not fit; the temp name is the same pattern, keeping the
    target's suffix because OpenCV picks the container from it.) The writer opens on the first frame, when
    the size is known; a
    frame of another size (the view was switched) is resized to the recording's size.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _FOURCC_BY_SUFFIX:
            raise RecordingError(
                f"cannot record to '{self.path}': use one of {', '.join(sorted(_FOURCC_BY_SUFFIX))}"
            )
        self.fourcc = _FOURCC_BY_SUFFIX[suffix]
        self.fps = float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (w, h)
        self._writer: cv2.VideoWriter | None = None
        self._tmp: Path | None = None

    def _open(self, w: int, h: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from edgeseg.io_utils import temp_path_for

        self._tmp = temp_path_for(
            self.path
        )  # edgeseg's temp pattern: a SIGKILL'ed recording is cleaned later
        writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
        if not writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise RecordingError(
                f"OpenCV cannot write '{self.path}' with codec {self.fourcc} at {w}x{h}; "
                "try a .avi file (MJPG)"
            )
        self._writer = writer
        self.size = (w, h)

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self._writer is None:
            self._open(w, h)
        assert self._writer is not None and self.size is not None
        if (w, h) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Finalise the container and move it into place; None when no frame was ever written."""
        if self._writer is None or self._tmp is None:
            return None
        self._writer.release()
        self._writer = None
        # mkstemp makes the file private (0600); give the recording the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        os.replace(self._tmp, self.path)
        self._tmp = None
        return self.path

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def check_display() -> None:
    """Raise one clear line when a window cannot be shown; call before opening anything."""
    if not opencv_has_gui():
        raise DisplayError(
            f"this OpenCV {cv2.__version__} has no GUI support (opencv-python-headless): add "
            "--headless, or `pip uninstall opencv-python-headless && pip install opencv-python` "
            "for a window"
        )
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise DisplayError(
            "no display (DISPLAY is not set): add --headless (with --record to keep the output), "
            "or run from a desktop session / `ssh -X`"
        )


class Window:
    """cv2.imshow window; `poll(ms)` returns the key pressed (-1 = none) and notices a closed window."""

    def __init__(self, title: str = "edgeseg demo") -> None:
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        self._shown = False

    def show(self, image: np.ndarray) -> None:
        cv2.imshow(self.title, image)
        self._shown = True

    def poll(self, ms: int = 1) -> int:
        key = cv2.waitKey(ms)
        # Closing the window with the mouse counts as quit (otherwise imshow would just reopen it).
        if self._shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return 27
        return key

    def close(self) -> None:
        cv2.destroyWindow(self.title)
        cv2.waitKey(1)
