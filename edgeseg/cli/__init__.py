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


def _debug_traceback(exc: BaseException) -> None:
    """EDGESEG_DEBUG=1: the full traceback, causes included (even those a `from None` hid), before the line."""
    import os
    import traceback

    if os.environ.get("EDGESEG_DEBUG", "").strip() not in ("", "0"):
        exc.__suppress_context__ = False
        sys.stderr.write("".join(traceback.format_exception(exc)))


def _usage_error(exc: ClickException) -> int:
    """Usage errors (an unknown option, a value outside its range) as one `error:` line with a hint."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # `edgeseg data`: the group's help, as before
        exc.show()
        return exc.exit_code
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    fail(exc.format_message().replace("\n", " ") + hint)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point. User errors -> one line on stderr and a non-zero exit, never a traceback.

    SIGTERM (docker stop, timeout) is turned into an exception for the duration of the command, so the
    atomic writers remove their temp files and staging folders before the process exits (143)."""
    from edgeseg.signals import Terminated, terminate_as_exception

    command = typer.main.get_command(app)
    with terminate_as_exception():
        try:
            result = command.main(
                args=list(argv) if argv is not None else None, prog_name="edgeseg", standalone_mode=False
            )
        except EdgesegError as exc:
            _debug_traceback(exc)
            fail(str(exc))
            return exc.exit_code
        except typer.Exit as exc:
            return exc.exit_code
        except ClickException as exc:  # usage errors: bad option, unknown command, value out of range
            _debug_traceback(exc)
            return _usage_error(exc)
        except typer.Abort:
            typer.echo("aborted", err=True)
            return 130
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != "torch":
                raise
            _debug_traceback(exc)
            fail(
                "this command needs PyTorch, which is not installed here (pip install torch==2.13.0); "
                "the device-side commands (bench, demo, build-engine, eval of .onnx/.engine) do not"
            )
            return 3
        except OSError as exc:  # the environment, not a bug: a file vanished, permissions, a full disk
            from edgeseg.io_utils import describe_os_error

            _debug_traceback(exc)
            fail(describe_os_error(exc).replace("cannot write", "cannot access"))
            return 2
        except MemoryError as exc:
            _debug_traceback(exc)
            fail("out of memory; use a smaller --size, --batch or fewer images")
            return 2
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            return 130
        except Terminated:
            typer.echo("terminated", err=True)
            return 143
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
