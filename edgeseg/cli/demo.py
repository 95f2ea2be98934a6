"""Command: `edgeseg demo` (live segmentation of a camera, stream, video file or image folder)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.validate import ranged
from edgeseg.deploy.runtime.backends import backend_help, model_suffixes


def demo(
    model: Annotated[
        str,
        typer.Option("--model", "-m", help=f"model file exported by edgeseg ({', '.join(model_suffixes())})"),
    ],
    source: Annotated[
        str,
        typer.Option(
            "--source",
            "-s",
            help="0 | /dev/video0 | clip.mp4 | frames/ | rtsp://... | http(s)://... | csi://0",
        ),
    ],
    backend: Annotated[str, typer.Option(help=backend_help())] = "auto",
    size: Annotated[
        str | None, typer.Option(help="model input HxW for dynamic-shape models, e.g. 512x1024")
    ] = None,
    alpha: Annotated[float, ranged(help="overlay opacity: 0 = frame only, 1 = mask only", lo=0, hi=1)] = 0.5,
    view: Annotated[str, typer.Option(help="overlay | mask | side-by-side (key v cycles)")] = "overlay",
    headless: Annotated[bool, typer.Option("--headless", help="no window (servers, CI, robots)")] = False,
    record: Annotated[
        Path | None, typer.Option(help="write the rendered stream to a video (.mp4/.avi)")
    ] = None,
    max_frames: Annotated[int | None, ranged(help="stop after rendering this many frames", lo=1)] = None,
    stats: Annotated[Path | None, typer.Option(help="write run statistics as JSON at exit")] = None,
    retries: Annotated[
        int, ranged(help="reconnect attempts in a row for a live source that drops", lo=0, hi=1000)
    ] = 5,
    retry_delay: Annotated[
        float, ranged(help="first reconnect delay in seconds; doubles per attempt, up to 8 s", lo=0, hi=8)
    ] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="print the statistics as JSON on stdout")] = False,
) -> None:
    """Segment a live camera, stream, video file or image folder and show / record the result.

    Keys in the window: q or ESC quit, space pause, v switch view. Ctrl-C (or SIGTERM) stops cleanly:
    the recording is finalised and the statistics written. A live source that drops is reopened with
    back-off; the command exits non-zero if it does not come back.

    Examples:
      edgeseg demo --model student.onnx --source 0
      edgeseg demo --model student.engine --source csi://0 --backend tensorrt
      edgeseg demo --model student.onnx --source drive.mp4 --headless --record out.mp4 --stats stats.json
      edgeseg demo --model student.onnx --source rtsp://cam.local/stream --view side-by-side
    """
    from edgeseg.demo.app import DemoConfig, run_demo
    from edgeseg.demo.stats import DemoStats, summary_line
    from edgeseg.preflight import check_outputs
    from edgeseg.sizes import parse_size

    check_outputs(files=[record, stats], inputs=[model, source if Path(source).exists() else None])

    config = DemoConfig(
        model=model,
        source=source,
        backend=backend,
        size=parse_size(size) if size else None,
        alpha=alpha,
        view=view,
        headless=headless,
        record=record,
        max_frames=max_frames,
        stats_path=stats,
        max_retries=retries,
        backoff_s=retry_delay,
    )  # type: ignore[arg-type]

    def on_event(message: str) -> None:
        typer.echo(message, err=True)

    def on_finish(result: DemoStats) -> None:
        typer.echo(summary_line(result), err=as_json)
        if record is not None and result.frames_recorded:
            typer.echo(f"recorded {result.frames_recorded} frames -> {record}", err=as_json)
        if stats is not None:
            typer.echo(f"stats -> {stats}", err=as_json)
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2))

    if not (headless and sys.stderr.isatty()):
        run_demo(config, on_event=on_event, on_finish=on_finish)
        return
    # Headless on a terminal: a progress bar (of the file's frames, or a running count for live sources).
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("demo"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]}"),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("demo", total=None, fps="")

        def on_start(frame_count: int | None) -> None:
            totals = [n for n in (frame_count, max_frames) if n is not None]
            progress.update(task, total=min(totals) if totals else None)

        def on_frame(result: DemoStats) -> None:
            if result.frames_rendered % 5 == 0:
                progress.update(
                    task, completed=result.frames_rendered, fps=f"{result.end_to_end_fps:.1f} FPS"
                )

        def finish(result: DemoStats) -> None:
            progress.stop()
            on_finish(result)

        run_demo(config, on_start=on_start, on_frame=on_frame, on_event=on_event, on_finish=finish)


def register(app: typer.Typer) -> None:
    app.command()(demo)
