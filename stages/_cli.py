"""What every stage's ``main`` shares: clean errors instead of tracebacks for user mistakes."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

import torch

from cxrssl import distributed
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
    finally:
        distributed.cleanup()


def start_processes(module: str, argv: list[str] | None, section: dict | None) -> torch.device | None:
    """The processes params.yaml's ``distributed`` section asks for; this process's device.

    With ``nproc_per_node`` > 1 and not started by torchrun, the stage runs
    again under torchrun and None is returned once it has succeeded (the
    caller returns); its failure exits with torchrun's status.
    """
    config = distributed.validate_params(section)
    status = distributed.relaunch(module, sys.argv[1:] if argv is None else argv, config["nproc_per_node"])
    if status is None:
        return distributed.setup(config["backend"])
    if status:
        print(f"error: {module}: its {config['nproc_per_node']} processes under torchrun failed (exit status "
              f"{status}); their messages are above", file=sys.stderr)
        sys.exit(status)
    return None
