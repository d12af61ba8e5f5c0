"""Atomic outputs: a stage either leaves its complete output or none at all."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cxrssl.errors import CxrsslError

#: errno values that mean "this output cannot be written" (no space, quota, read-only file system)
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _cannot_write(final: Path, error: OSError) -> CxrsslError:
    return CxrsslError(f"{final}: cannot write it ({error.strerror or error}); the previous output, if any, "
                       "is left as it was")


def _parent_ready(path: Path) -> None:
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise CxrsslError(f"{path}: cannot write there, {parent} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CxrsslError(f"{path}: cannot create the folder {path.parent} ({error.strerror})") from None


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Build a folder under a temporary name and move it into place on success.

    The previous ``final`` stays untouched until the new one is complete; on an
    exception the temporary folder is removed and ``final`` is left as it was.
    """
    final = Path(final)
    _parent_ready(final)
    if final.exists() and not final.is_dir():  # checked before the work, not after it
        raise CxrsslError(f"{final}: exists and is not a folder")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as error:
        raise CxrsslError(f"{final}: cannot write in {final.parent} ({error.strerror})") from None
    try:
        try:
            yield tmp
        except OSError as error:
            if error.errno in _WRITE_ERRORS:  # a full disk while the stage writes its files
                raise _cannot_write(final, error) from None
            raise
        try:
            tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mode
            if final.exists():
                old = final.with_name(f".{final.name}.old-{os.getpid()}")
                final.rename(old)
                try:
                    tmp.rename(final)
                except OSError:
                    old.rename(final)  # put the previous output back
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(final)
        except OSError as error:
            raise _cannot_write(final, error) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: str | Path, mode: str = "w") -> Iterator:
    """Open a temporary file beside ``final``; rename it into place when the block succeeds."""
    final = Path(final)
    _parent_ready(final)
    if final.is_dir():  # checked before the work, not after it
        raise CxrsslError(f"{final}: exists and is a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    except OSError as error:
        raise CxrsslError(f"{final}: cannot write in {final.parent} ({error.strerror})") from None
    try:
        try:
            with os.fdopen(fd, mode) as handle:
                yield handle
            os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
            os.replace(name, final)
        except OSError as error:  # the block only writes: any OS error here is a failed write
            raise _cannot_write(final, error) from None
    finally:
        if os.path.exists(name):
            os.unlink(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_file(path) as handle:
        json.dump(data, handle, indent=2, allow_nan=False)
        handle.write("\n")


def write_csv(path: str | Path, frame) -> None:
    """Write a pandas frame as CSV without its index, atomically."""
    with atomic_file(path) as handle:
        frame.to_csv(handle, index=False)
