"""The one rule for numeric ranges (CLI options, merge-method parameters): finite, inside [lo, hi] (either end
may be open or absent), and the same words for it in --help and in the error. Torch- and CLI-free."""

from __future__ import annotations

import math

from edgeseg.errors import ConfigError


def fmt_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def range_text(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    """'>= 0 and < 1' (or 'finite' when unbounded): what --help and the error say."""
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {fmt_number(lo)}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {fmt_number(hi)}")
    return " and ".join(parts) if parts else "finite"


def check_number(
    value: float,
    what: str,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """`value` if it is finite and inside the range; else ConfigError naming `what` and the range."""
    bad = isinstance(value, float) and not math.isfinite(value)
    if not bad and lo is not None:
        bad = value <= lo if lo_open else value < lo
    if not bad and hi is not None:
        bad = value >= hi if hi_open else value > hi
    if bad:
        raise ConfigError(f"{what} must be {range_text(lo, hi, lo_open, hi_open)}, got {value}")
    return value
