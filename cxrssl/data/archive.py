"""Datasets read straight from a zip archive, as CheXpert is distributed (``CheXpert-v1.0-small.zip``).

A dataset root may be a folder or a ``.zip`` file. Inside an archive, a file
is named ``<archive>.zip::<member>`` (``data/x.zip::CheXpert-v1.0-small/train.csv``),
so that the readers can join paths onto a root with ``Path`` as they do for a
folder, and so that an error names both the archive and the file in it. Only
``.zip::`` starts a member: a folder whose name holds ``::`` is a plain path.

Reading from the archive, not from an extracted tree, saves unpacking 224k
files, and lets DVC check one file instead of walking some 250k patient and
study folders on every ``dvc status``.

Each process opens an archive once and keeps it (the workers of a pool each
get their own handle: a shared one would interleave their seeks), and opens
it again when the file on disk has changed (see docs/performance.md for what
opening CheXpert's 224k-member archive costs).
"""

from __future__ import annotations

import io
import lzma
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from cxrssl.errors import DataError

SEP = "::"
SUFFIX = ".zip"
_MEMBER = re.compile(re.escape(SUFFIX + SEP), re.IGNORECASE)
_JUNK_TOPS = ("__MACOSX",)  # what macOS's archiver adds beside the real top folder

#: What reading a damaged or unsupported member raises (CRC, inflate, encryption, truncation).
_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,
    EOFError,
    NotImplementedError,
    ValueError,
)

_handles: dict[tuple[int, str], tuple[tuple[int, int, int], zipfile.ZipFile]] = {}


def split(ref: str | Path) -> tuple[str, str] | None:
    """(archive, member) for ``archive.zip::member``; None for a plain path."""
    text = str(ref)
    found = _MEMBER.search(text)
    if found is None:
        return None
    return text[: found.start() + len(SUFFIX)], text[found.end() :].lstrip("/")


def is_archive(path: str | Path) -> bool:
    """True for a path naming a zip file, not a folder (whether or not it exists yet)."""
    return Path(path).suffix.lower() == SUFFIX and split(path) is None and not Path(path).is_dir()


def _open(archive: str) -> zipfile.ZipFile:
    key = (os.getpid(), os.path.realpath(archive))
    try:
        info = os.stat(key[1])
    except FileNotFoundError:
        raise DataError(f"{archive}: no such file") from None
    except OSError as error:
        raise DataError(f"{archive}: cannot read it ({error.strerror})") from None
    stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
    cached = _handles.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    if cached is not None:  # the archive was rewritten since: read the new one
        cached[1].close()
    try:
        handle = zipfile.ZipFile(key[1])
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"{archive}: not a readable zip archive ({error})") from None
    _handles[key] = (stamp, handle)
    return handle


def close_all() -> None:
    """Close this process's archive handles."""
    for key in [k for k in _handles if k[0] == os.getpid()]:
        _handles.pop(key)[1].close()


def dataset_root(root: str | Path, table: str | None = None) -> Path:
    """The root to join table and image paths onto.

    A folder is its own root. In an archive: its top, if ``table`` (such as
    ``train.csv``) is there; else the one top-level folder that holds
    ``table``; without a ``table`` to look for, the archive's one top-level
    folder when nothing else is at the top (as in ``CheXpert-v1.0-small.zip``),
    else its top. ``__MACOSX/`` and dot-names at the top are ignored.
    """
    if not is_archive(root):
        return Path(root)
    names = set(_open(str(root)).namelist())
    tops = {n.split("/", 1)[0]: "/" in n.strip("/") or n.endswith("/") for n in names}
    tops = {t: is_folder for t, is_folder in tops.items() if t not in _JUNK_TOPS and not t.startswith(".")}
    folders = sorted(t for t, is_folder in tops.items() if is_folder)
    if table is not None and not Path(table).is_absolute():
        if table in names:
            return Path(f"{root}{SEP}")
        holding = [f for f in folders if f"{f}/{table}" in names]
        if len(holding) == 1:
            return Path(f"{root}{SEP}{holding[0]}")
    top = folders[0] if len(folders) == 1 and len(tops) == 1 else ""
    return Path(f"{root}{SEP}{top}")


def exists(ref: str | Path) -> bool:
    """True if the file (on disk or in an archive) exists."""
    parts = split(ref)
    if parts is None:
        return Path(ref).is_file()
    archive, member = parts
    try:
        _open(archive).getinfo(member)
    except KeyError:
        return False
    return True


def read_bytes(ref: str | Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a file on disk or in an archive.

    Args:
        max_bytes: refuse a file (or member, by the size it inflates to) larger than
            this before reading any of it, so that a hostile archive cannot exhaust memory.

    Raises:
        FileNotFoundError: no such file (or member).
        OSError: an unreadable file, or a member that is damaged (CRC, inflate) or encrypted.
        DataError: an archive that is missing or not a zip file, or a file over ``max_bytes``.
    """
    parts = split(ref)
    if parts is None:
        with open(ref, "rb") as handle:
            _check_size(ref, os.fstat(handle.fileno()).st_size, max_bytes)
            return handle.read()
    archive, member = parts
    handle = _open(archive)
    try:
        _check_size(ref, handle.getinfo(member).file_size, max_bytes)
        return handle.read(member)  # zipfile stops at the declared size and checks the CRC
    except KeyError:
        raise FileNotFoundError(2, "no such file in the archive", str(ref)) from None
    except _MEMBER_ERRORS as error:
        raise OSError(5, f"damaged or unreadable archive member ({error})", str(ref)) from None


def _check_size(ref: str | Path, size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise DataError(
            f"{ref}: {size:,} bytes{' once inflated' if split(ref) else ''}, more than the "
            f"{max_bytes:,} allowed (preprocess.max_file_bytes)"
        )


def open_binary(ref: str | Path, max_bytes: int | None = None) -> BinaryIO:
    """A binary file object for a file on disk or in an archive (a member is read whole, so that any
    damage is raised here, as an OSError naming it, not halfway through a reader)."""
    if split(ref) is None:
        handle = open(ref, "rb")
        try:
            _check_size(ref, os.fstat(handle.fileno()).st_size, max_bytes)
        except DataError:
            handle.close()
            raise
        return handle
    return io.BytesIO(read_bytes(ref, max_bytes))
