"""What every stage's ``main`` shares: clean errors instead of tracebacks for user mistakes."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

from cxrssl.errors import CxrsslError


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(main: Callable[[], None], stage: str) -> None:
    """Call ``main``; print a user error as one line and exit with status 1.

    SIGTERM (a killed job, a cancelled CI run) is handled like Ctrl-C, so the
    temporary outputs are cleaned up on the way out.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except CxrsslError as error:
        print(f"error: {stage}: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"error: {stage}: interrupted; no output was written", file=sys.stderr)
        sys.exit(130)
