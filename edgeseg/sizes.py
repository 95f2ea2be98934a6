"""The one rule for image sizes written as text: 'HxW' -> (height, width).

    parse_size("512x1024")                                  # (512, 1024)
    parse_size("256x512", multiple_of=8, min_side=64)       # the synthetic renderer's rule

Every command, config and target profile parses sizes here (torch- and CLI-free, so the device side uses it
too). Each side is capped at MAX_SIDE so a typo cannot allocate 100 GiB.
"""

from __future__ import annotations

from typing import Any

from edgeseg.errors import ConfigError

MAX_SIDE = 8192  # pixels per side: 8192x8192 RGB float is already 800 MB a frame


def parse_size(
    text: Any, what: str = "size", multiple_of: int = 1, min_side: int = 1, max_side: int = MAX_SIDE
) -> tuple[int, int]:
    """'512x1024' -> (512, 1024); each side in [min_side, max_side] and a multiple of `multiple_of`."""
    try:
        h, w = (int(v) for v in str(text).lower().strip().split("x"))
    except ValueError:
        raise ConfigError(f"{what} '{text}' is not HxW, e.g. 512x1024") from None
    if h < min_side or w < min_side:
        raise ConfigError(
            f"{what} '{text}': height and width must be >= {min_side}"
            if min_side > 1
            else f"{what} '{text}' must be positive"
        )
    if h > max_side or w > max_side:
        raise ConfigError(f"{what} '{text}' is too large: at most {max_side} pixels per side")
    if h % multiple_of or w % multiple_of:
        raise ConfigError(f"{what} '{text}': height and width must be multiples of {multiple_of}")
    return h, w
