"""Atomic outputs: a stage either leaves its complete output or none at all.

Outputs are built under a temporary name beside the final one
(``.<name>.tmp-<pid>-<random>``) and renamed into place when complete. A
stage killed with SIGKILL cannot clean up; its leftovers are swept the next
time anything writes that output (those whose process is gone), so a
crashed 11 GB store does not keep the disk full.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cxrssl.errors import CxrsslError

#: errno values that mean "this output cannot be written" (no space, quota, read-only file system, file size
#: limit)
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def _cannot_write(final: Path, error: OSError) -> CxrsslError:
    return CxrsslError(
        f"{final}: cannot write it ({error.strerror or error}); the previous output, if any, is left as it was"
    )


def _parent_ready(path: Path) -> None:
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise CxrsslError(f"{path}: cannot write there, {parent} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CxrsslError(f"{path}: cannot create the folder {path.parent} ({error.strerror})") from None


def _temporary_prefix(final: Path) -> str:
    return f".{final.name}.tmp-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_leftovers(final: Path) -> list[Path]:
    """Remove the temporaries a killed writer of ``final`` left behind; return what was removed.

    Matches ``.<name>.tmp-*`` and ``.<name>.old-*`` beside ``final``; one whose
    name carries the pid of a live process is another writer's and is kept.
    """
    removed = []
    pattern = re.compile(rf"\.{re.escape(final.name)}\.(tmp|old)-(.+)")
    if not final.parent.is_dir():
        return removed
    for path in final.parent.iterdir():
        found = pattern.fullmatch(path.name)
        if found is None:
            continue
        kind, rest = found.groups()
        owner = rest.split("-", 1)[0]
        if owner.isdigit() and (kind == "old" or "-" in rest) and _alive(int(owner)):
            continue  # a running writer's (a name without a pid comes from an earlier version: swept)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Build a folder under a temporary name and move it into place on success.

    The previous ``final`` stays untouched until the new one is complete; on an
    exception the temporary folder is removed and ``final`` is left as it was.
    (Under ``dvc repro``, DVC itself deletes a stage's outputs before running it.)
    """
    final = Path(final)
    _parent_ready(final)
    if final.exists() and not final.is_dir():  # checked before the work, not after it
        raise CxrsslError(f"{final}: exists and is not a folder")
    sweep_leftovers(final)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(final), dir=final.parent))
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
    sweep_leftovers(final)
    try:
        fd, name = tempfile.mkstemp(prefix=_temporary_prefix(final), dir=final.parent)
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


def preallocate(path: Path, chunk: int = 1 << 24) -> None:
    """Reserve the disk blocks of a (sparse) file, so a full disk is an ``ENOSPC`` now, not a SIGBUS later.

    A memory map writes into a sparse file's holes: with no space left, the
    kernel kills the process with SIGBUS and no message. Where the file system
    cannot allocate ahead (``posix_fallocate`` unsupported), the file is
    filled with zeros instead.
    """
    with open(path, "r+b") as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
            return
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
        zeros = bytes(chunk)
        handle.seek(0)
        for start in range(0, size, chunk):
            handle.write(zeros[: min(chunk, size - start)])
