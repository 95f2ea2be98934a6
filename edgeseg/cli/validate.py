"""Option validation at the CLI boundary: every numeric option states its allowed range in `--help` and a
value outside it (nan, inf, negative, zero, absurd) is one usage error before any work starts.

`ranged(...)` is a `typer.Option` whose help ends with the range and whose callback enforces it. Sizes
(`HxW`) are parsed by `parse_size`, which caps each side at MAX_SIDE so a typo cannot allocate 100 GiB.
"""

from __future__ import annotations

from typing import Any

import typer

from edgeseg.errors import ConfigError
from edgeseg.ranges import check_number, range_text  # noqa: F401  (the CLI's range rule)
from edgeseg.sizes import MAX_SIDE, parse_size  # noqa: F401  (the CLI's size rule)

MAX_SEED = 2**32 - 1  # numpy's and torch's seed range


def _checker(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> Any:
    def callback(ctx: typer.Context, param: Any, value: Any) -> Any:
        if value is None or ctx.resilient_parsing:
            return value
        name = (param.opts[0] if getattr(param, "opts", None) else param.name) or "value"
        for v in value if isinstance(value, list | tuple) else [value]:
            try:
                check_number(v, name, lo, hi, lo_open, hi_open)
            except ConfigError as exc:  # one line through the CLI's error path, with where to look
                raise ConfigError(f"{exc} (see '{ctx.command_path} --help')") from None
        return value

    return callback


def ranged(
    *decls: str,
    help: str,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    **kwargs: Any,
) -> Any:
    """A typer.Option that accepts only finite values in the range, and says the range in its help."""
    return typer.Option(
        *decls,
        help=f"{help} [{range_text(lo, hi, lo_open, hi_open)}]",
        callback=_checker(lo, hi, lo_open, hi_open),
        **kwargs,
    )


def seed_option(help: str = "random seed") -> Any:
    return ranged(help=help, lo=0, hi=MAX_SEED)
