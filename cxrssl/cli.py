"""What every stage's ``main`` shares: clean errors instead of tracebacks, and the stage's own name.

A stage of a ``foreach`` or ``matrix`` (``pretrain@moco``, ``finetune@simclr-10``)
learns its item from ``DVC_STAGE``, which DVC sets for every command it runs,
not from its command line: ``dvc.yaml`` builds each ``cmd`` with no string
taken from params.yaml, so a list entry such as ``moco; rm -rf ~`` never
reaches a shell. The stage checks the name and fills it into its paths
(``models/pretrain/{method}.pt``).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from cxrssl.errors import CxrsslError, ParamError

#: What an init or method name may be: it becomes part of file and stage names.
NAME = re.compile(r"[a-z][a-z0-9_]*")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(main: Callable[[], None], stage: str, cleanup: Callable[[], None] | None = None) -> None:
    """Call ``main``; print a user error as one line and exit with status 1.

    SIGTERM (a killed job, a cancelled CI run) is handled like Ctrl-C, so the
    temporary outputs are cleaned up on the way out. ``cleanup`` runs last
    whatever happened (the training stages leave their process group).
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
        if cleanup is not None:
            cleanup()


def check_name(key: str, name: str) -> str:
    """``name`` if it is a valid init or method name, else a ParamError naming ``key``."""
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise ParamError(
            f"params: {key} has {name!r}; expected a name of lower-case letters, digits and "
            "underscores, starting with a letter"
        )
    return name


def stage_item(stage: str, given: str | None) -> str:
    """The item of ``stage@<item>``: ``given`` (the command line), else DVC's ``DVC_STAGE``."""
    if given is not None:
        return given
    addressing = os.environ.get("DVC_STAGE", "").rsplit(":", 1)[-1]  # "dvc.yaml:name" outside the root
    prefix = f"{stage}@"
    if not addressing.startswith(prefix):
        raise ParamError(
            f"{stage}: which one? Run it through DVC (dvc repro {stage}@<item>) or name it on the "
            "command line (see --help)"
        )
    return addressing.removeprefix(prefix)


def fill(path: Path, **names: str | int) -> Path:
    """``path`` with ``{name}`` replaced by each (checked) value: ``models/pretrain/{method}.pt``."""
    text = str(path)
    for key, value in names.items():
        text = text.replace("{" + key + "}", str(value))
    return Path(text)


def stage_parser(description: str, paths: dict[str, str]) -> argparse.ArgumentParser:
    """A stage's command line: its paths (positional, in order: ``{name: help}``) and ``--params``."""
    parser = argparse.ArgumentParser(description=description)
    for name, text in paths.items():
        parser.add_argument(name, type=Path, help=text)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the parameters (params.yaml)")
    return parser
