"""Demo building blocks: the frame queue policies, source parsing, rendering, keys, back-off."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edgeseg.demo.pipeline import backoff_delay
from edgeseg.demo.queues import Empty, FrameQueue, QueueClosed
from edgeseg.demo.render import Renderer, key_action, next_view, palette_lut
from edgeseg.demo.sinks import RecordingError, VideoRecorder
from edgeseg.demo.sources import (
    FolderCapture,
    check_csi_support,
    csi_pipeline,
    opencv_has_gstreamer,
    opencv_has_gui,
    parse_source,
)
from edgeseg.errors import SourceError

# --- FrameQueue -------------------------------------------------------------------------------------


def test_live_queue_newest_wins_and_counts_drops() -> None:
    q = FrameQueue(1, drop_oldest=True)
    for i in range(5):
        q.put(i)
    assert len(q) == 1 and q.dropped == 4
    assert q.get(timeout=0) == 4
    with pytest.raises(Empty):
        q.get(timeout=0.01)


def test_live_queue_of_two_keeps_the_two_newest_in_order() -> None:
    q = FrameQueue(2, drop_oldest=True)
    for i in range(6):
        q.put(i)
    assert [q.get(timeout=0), q.get(timeout=0)] == [4, 5]
    assert q.dropped == 4


def test_file_queue_blocks_instead_of_dropping() -> None:
    q = FrameQueue(2, drop_oldest=False)
    q.put(0)
    q.put(1)
    with pytest.raises(TimeoutError):
        q.put(2, timeout=0.02)
    received: list[int] = []

    def consume() -> None:
        for _ in range(10):
            time.sleep(0.002)
            received.append(q.get(timeout=2))

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(2, 10):
        q.put(i, timeout=2)  # waits for room each time the consumer is behind
    consumer.join()
    assert received == list(range(10)) and q.dropped == 0


def test_close_drains_then_returns_end_marker_and_wakes_blocked_producer() -> None:
    q = FrameQueue(1, drop_oldest=False)
    q.put("a")
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            q.put("b")  # blocks: queue full
        except QueueClosed as exc:
            errors.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.02)
    q.close("END")
    producer.join(timeout=1)
    assert not producer.is_alive() and len(errors) == 1
    assert q.get(timeout=0) == "a"
    assert q.get(timeout=0) == "END" and q.get(timeout=0) == "END"
    q.close("LATER")  # the first reason is kept
    assert q.get(timeout=0) == "END"


# --- sources ----------------------------------------------------------------------------------------


def test_parse_source_kinds(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"x")
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((4, 4, 3), np.uint8))
    cases = {
        "0": ("camera", 0, True),
        "csi://1": ("csi", 1, True),
        "rtsp://user:secret@cam.local:554/stream": (
            "stream",
            "rtsp://user:secret@cam.local:554/stream",
            True,
        ),
        "https://cam.local/mjpeg": ("stream", "https://cam.local/mjpeg", True),
        "https://host/clips/drive.MP4?token=1": ("stream", "https://host/clips/drive.MP4?token=1", False),
        str(tmp_path): ("folder", str(tmp_path), False),
        str(tmp_path / "clip.mp4"): ("file", str(tmp_path / "clip.mp4"), False),
        f"file://{tmp_path / 'clip.mp4'}": ("file", str(tmp_path / "clip.mp4"), False),
        str(tmp_path / "one.png"): ("image", str(tmp_path / "one.png"), False),
    }
    for uri, (kind, target, live) in cases.items():
        spec = parse_source(uri)
        assert (spec.kind, spec.target, spec.live) == (kind, target, live), uri
    assert "secret" not in parse_source("rtsp://user:secret@cam.local/s").label


@pytest.mark.parametrize("uri", ["no/such/clip.mp4", "/dev/video97", "csi://left", ""])
def test_parse_source_rejects_with_one_line(uri: str) -> None:
    with pytest.raises(SourceError) as info:
        parse_source(uri)
    assert "\n" not in str(info.value)


def test_csi_needs_gstreamer_and_says_how_to_get_it() -> None:
    spec = parse_source("csi://0")
    with pytest.raises(SourceError, match="GStreamer") as info:
        check_csi_support(spec, build_info="  Video I/O:\n    GStreamer:                   NO\n")
    assert "JetPack" in str(info.value) and "\n" not in str(info.value)
    check_csi_support(spec, build_info="    GStreamer:                   YES (1.20.3)\n")
    assert opencv_has_gstreamer("    GStreamer:   YES (1.16.3)") and not opencv_has_gstreamer("GStreamer: NO")
    pipeline = csi_pipeline(1, 640, 480, 60)
    assert (
        pipeline.startswith("nvarguscamerasrc sensor-id=1 ") and "appsink" in pipeline and "60/1" in pipeline
    )


def test_gui_detection_from_build_info() -> None:
    assert not opencv_has_gui("  GUI:                           NONE\n")
    assert opencv_has_gui("  GUI:                           GTK3\n")


def test_folder_capture_reads_sorted_images_then_ends(tmp_path: Path) -> None:
    for i in (3, 0, 2, 1):
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.png"), np.full((8, 8, 3), i * 40, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    cap = FolderCapture.open(parse_source(str(tmp_path)))
    values = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        values.append(int(frame[0, 0, 0]))
    assert values == [0, 40, 80, 120]


def test_empty_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images"):
        FolderCapture.open(parse_source(str(tmp_path)))


# --- rendering ----------------------------------------------------------------------------------------


def _labels(h: int = 64, w: int = 128) -> np.ndarray:
    labels = np.zeros((h, w), np.uint8)
    labels[:, w // 2 :] = 1
    return labels


def test_overlay_differs_where_labels_differ_on_identical_pixels(demo_fakes: SimpleNamespace) -> None:
    frame = np.full((64, 128, 3), 120, np.uint8)  # one colour everywhere: only the labels differ
    r = Renderer(demo_fakes.CLASSES, demo_fakes.PALETTE_RGB, alpha=0.5, show_legend=False, show_hud=False)
    out = r.render(frame, _labels())
    left, right = out[:, :64].reshape(-1, 3), out[:, 64:].reshape(-1, 3)
    # 0.5 * 120 + 0.5 * palette colour (BGR)
    assert np.abs(left.astype(int) - (60 + np.array(demo_fakes.PALETTE_RGB[0][::-1]) // 2)).max() <= 1
    assert np.abs(right.astype(int) - (60 + np.array(demo_fakes.PALETTE_RGB[1][::-1]) // 2)).max() <= 1


def test_views_alpha_and_buffer_reuse(demo_fakes: SimpleNamespace) -> None:
    frame = demo_fakes.two_region_frame()
    r = Renderer(demo_fakes.CLASSES, demo_fakes.PALETTE_RGB, alpha=0.0, show_legend=False, show_hud=False)
    assert np.array_equal(r.render(frame, _labels()), frame)  # alpha 0: the frame untouched
    first = r.render(frame, _labels())
    r.render(frame, _labels())
    assert r.allocations == 1 and r.render(frame, _labels()) is first  # same buffer, no re-allocation
    r.view = "mask"
    mask = r.render(frame, _labels())
    assert (
        tuple(mask[0, 0]) == demo_fakes.PALETTE_RGB[0][::-1]
        and tuple(mask[0, 127]) == demo_fakes.PALETTE_RGB[1][::-1]
    )
    r.view = "side-by-side"
    r.alpha = 0.5
    sbs = r.render(frame, _labels())
    assert sbs.shape == (64, 256, 3) and np.array_equal(sbs[:, 128:], mask)
    assert r.allocations == 3
    r.render(np.zeros((32, 48, 3), np.uint8), np.zeros((32, 48), np.uint8))  # new shape -> new buffers
    assert r.allocations == 4


def test_labels_of_another_size_are_resized_nearest(demo_fakes: SimpleNamespace) -> None:
    r = Renderer(
        demo_fakes.CLASSES, demo_fakes.PALETTE_RGB, alpha=1.0, view="mask", show_legend=False, show_hud=False
    )
    out = r.render(np.zeros((64, 128, 3), np.uint8), _labels(16, 32))
    assert out.shape == (64, 128, 3)
    assert set(map(tuple, out.reshape(-1, 3))) == {
        demo_fakes.PALETTE_RGB[0][::-1],
        demo_fakes.PALETTE_RGB[1][::-1],
    }


def test_legend_lists_present_classes_by_area_and_hud_is_drawn(demo_fakes: SimpleNamespace) -> None:
    r = Renderer(demo_fakes.CLASSES, demo_fakes.PALETTE_RGB, alpha=0.5)
    labels = np.zeros((360, 640), np.uint8)
    labels[:, 400:] = 2
    labels[:10, :10] = 255  # ignore: not in the legend
    assert r.classes_present(labels) == [0, 2]
    bare = Renderer(demo_fakes.CLASSES, demo_fakes.PALETTE_RGB, alpha=0.5, show_legend=False, show_hud=False)
    frame = np.full((360, 640, 3), 90, np.uint8)
    plain = bare.render(frame, labels).copy()
    drawn = r.render(frame, labels, ["12.0 FPS  infer 40 ms", "fake"])
    diff = np.any(drawn != plain, axis=2)
    assert diff[:40, :150].any()  # HUD top-left
    assert diff[:40, -80:].any()  # legend top-right
    assert not diff[200:, 100:500].any()  # the picture itself untouched


def test_palette_lut_is_bgr_and_unknown_ids_black() -> None:
    lut = palette_lut([(10, 20, 30)])
    assert tuple(lut[0, 0]) == (30, 20, 10) and tuple(lut[255, 0]) == (0, 0, 0)


def test_keys_and_view_cycle() -> None:
    assert key_action(ord("q")) == "quit" and key_action(27) == "quit"
    assert key_action(ord(" ")) == "pause" and key_action(ord("v")) == "next_view"
    assert key_action(-1) is None and key_action(ord("x")) is None
    assert key_action(0x100000 | ord("q")) == "quit"  # modifier bits from some GTK builds
    assert next_view("overlay") == "mask" and next_view("mask") == "side-by-side"
    assert next_view("side-by-side") == "overlay"


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(a, 0.5, 4.0) for a in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


# --- recorder -------------------------------------------------------------------------------------------


def test_recorder_is_atomic_and_resizes_other_shapes(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    rec = VideoRecorder(target, fps=10)
    rec.write(np.zeros((64, 128, 3), np.uint8))
    rec.write(np.zeros((64, 256, 3), np.uint8))  # side-by-side after a view switch: fitted to 128x64
    assert not target.exists()  # nothing under the final name until close
    assert rec.close() == target and target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    cap = cv2.VideoCapture(str(target))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128
    cap.release()


def test_recorder_rejects_unknown_container(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=".mp4"):
        VideoRecorder(tmp_path / "out.gif", fps=10)


def test_legend_never_covers_the_hud_on_narrow_frames(demo_fakes: SimpleNamespace) -> None:
    labels = np.zeros((120, 140), np.uint8)
    labels[60:, :70] = 1
    labels[60:, 70:] = 2
    frame = np.full((120, 140, 3), 90, np.uint8)
    hud = ["12.0 FPS  infer 40 ms  latency 80 ms", "onnxruntime-cpu"]
    with_legend = Renderer(demo_fakes.CLASSES, demo_fakes.PALETTE_RGB).render(frame, labels, hud).copy()
    hud_only = Renderer(demo_fakes.CLASSES, demo_fakes.PALETTE_RGB, show_legend=False).render(
        frame, labels, hud
    )
    differs = np.any(with_legend != hud_only, axis=2)
    hud_rows = int(np.flatnonzero(np.all(hud_only[:, :4] == 0, axis=(1, 2))).max()) + 1  # HUD box height
    assert differs.any()  # the legend is drawn ...
    assert not differs[:hud_rows].any()  # ... below the HUD, which stays intact
