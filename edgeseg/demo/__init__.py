"""Live segmentation demo: camera / file / folder / RTSP / CSI source -> Segmenter -> overlay -> window, video.

Torch-free: OpenCV, numpy and a runtime opened by edgeseg.deploy.runtime.backends.
"""

from edgeseg.demo.app import DemoConfig, run_demo
from edgeseg.demo.queues import FrameQueue
from edgeseg.demo.render import VIEWS, Renderer
from edgeseg.demo.sources import SourceSpec, open_capture, parse_source
from edgeseg.demo.stats import DemoStats, summary_line

__all__ = [
    "VIEWS",
    "DemoConfig",
    "DemoStats",
    "FrameQueue",
    "Renderer",
    "SourceSpec",
    "open_capture",
    "parse_source",
    "run_demo",
    "summary_line",
]
