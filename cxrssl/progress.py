"""Progress bars that stay readable in logs (DVC, CI) as well as in a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from tqdm import tqdm


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "img",
    enabled: bool = True,
) -> tqdm:
    """A tqdm bar: live in a terminal, a line every 10 s when output goes to a file or pipe (rank 0 only)."""
    interactive = sys.stderr.isatty()
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=not (enabled and _rank0()),
        mininterval=0.1 if interactive else 10.0,
        smoothing=0.1,
        dynamic_ncols=interactive,
    )


def _rank0() -> bool:
    """Not one of torchrun's other processes (it sets RANK for each)."""
    return os.environ.get("RANK", "0") == "0"
