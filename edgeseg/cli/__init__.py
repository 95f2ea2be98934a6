"""The `edgeseg` command line: parse, call one library function, print. No logic lives here.

Each command group sits in its own module (`edgeseg/cli/<group>.py`) with a `register(app)` function;
heavy imports (torch, onnxruntime, tensorrt) happen inside the command bodies so that `edgeseg --help`
and the device-side commands start fast and work without torch.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

try:  # typer >= 0.29 vendors its own click; older typer uses the click package
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import ClickException

from edgeseg.errors import EdgesegError

app = typer.Typer(
    name="edgeseg",
    help="Small semantic segmenters from research to the edge: distil, merge, export, benchmark, demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_COMMAND_MODULES = ("models", "data", "pretrain", "distill", "merge", "deploy", "bench", "demo", "quickstart")


def _register_commands() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(f"edgeseg.cli.{name}").register(app)


_register_commands()


def fail(message: str) -> None:
    """Print one error line to stderr (used by commands for non-exception failures)."""
    typer.echo(f"error: {message}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point. User errors -> one line on stderr and a non-zero exit, never a traceback."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv) if argv is not None else None, prog_name="edgeseg",
                              standalone_mode=False)
    except EdgesegError as exc:
        fail(str(exc))
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except ClickException as exc:  # usage errors: bad option, unknown command
        exc.show()
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        fail("this command needs PyTorch, which is not installed here (pip install torch==2.13.0); "
             "the device-side commands (bench, demo, build-engine, eval of .onnx/.engine) do not")
        return 3
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
