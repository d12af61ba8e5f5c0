"""Datasets read straight from a zip archive, as CheXpert is distributed (``CheXpert-v1.0-small.zip``).

A dataset root may be a folder or a ``.zip`` file. Inside an archive, a file
is named ``<archive>::<member>`` (``data/x.zip::CheXpert-v1.0-small/train.csv``),
so that the readers can join paths onto a root with ``Path`` as they do for a
folder, and so that an error names both the archive and the file in it.

Reading from the archive, not from an extracted tree, saves unpacking 224k
files, and lets DVC check one file instead of walking tens of thousands of
patient and study folders on every ``dvc status``.

Each process opens an archive once and keeps it: the workers of a pool each
get their own handle (a shared one would interleave their seeks).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import BinaryIO

from cxrssl.errors import DataError

SEP = "::"
SUFFIX = ".zip"

_handles: dict[tuple[int, str], zipfile.ZipFile] = {}


def is_archive(path: str | Path) -> bool:
    """True for a path naming a zip file (whether or not it exists yet)."""
    return Path(path).suffix.lower() == SUFFIX and SEP not in str(path)


def split(ref: str | Path) -> tuple[str, str] | None:
    """(archive, member) for ``archive::member``; None for a plain path."""
    text = str(ref)
    if SEP not in text:
        return None
    archive, member = text.split(SEP, 1)
    return archive, member.lstrip("/")


def _open(archive: str) -> zipfile.ZipFile:
    key = (os.getpid(), archive)
    if key not in _handles:
        try:
            _handles[key] = zipfile.ZipFile(archive)
        except FileNotFoundError:
            raise DataError(f"{archive}: no such file") from None
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(f"{archive}: not a readable zip archive ({error})") from None
    return _handles[key]


def close_all() -> None:
    """Close this process's archive handles (an archive rewritten in place is then read afresh)."""
    for key in [k for k in _handles if k[0] == os.getpid()]:
        _handles.pop(key).close()


def dataset_root(root: str | Path) -> Path:
    """The root to join table and image paths onto: ``root`` itself for a folder; for an archive, its
    one top-level folder when every member is under the same one (``CheXpert-v1.0-small/``), else its top."""
    if not is_archive(root):
        return Path(root)
    names = [n for n in _open(str(root)).namelist() if n.strip("/")]
    tops = {n.split("/", 1)[0] for n in names}
    top = tops.pop() if len(tops) == 1 and all("/" in n for n in names) else ""
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


def open_binary(ref: str | Path) -> BinaryIO:
    """A binary file object for a file on disk or in an archive."""
    parts = split(ref)
    if parts is None:
        return open(ref, "rb")
    archive, member = parts
    try:
        return _open(archive).open(member)
    except KeyError:
        raise FileNotFoundError(2, "no such file in the archive", str(ref)) from None


def read_bytes(ref: str | Path) -> bytes:
    """The bytes of a file on disk or in an archive.

    Raises:
        FileNotFoundError: no such file (or member).
        OSError: an unreadable file, or a member whose data fails the archive's CRC check.
    """
    parts = split(ref)
    if parts is None:
        return Path(ref).read_bytes()
    archive, member = parts
    handle = _open(archive)
    try:
        return handle.read(member)
    except KeyError:
        raise FileNotFoundError(2, "no such file in the archive", str(ref)) from None
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as error:
        raise OSError(5, f"corrupt archive member ({error})", str(ref)) from None


def open_text(ref: str | Path) -> io.TextIOWrapper:
    """A text file object (UTF-8, BOM skipped, newlines untranslated for the csv module)."""
    return io.TextIOWrapper(open_binary(ref), encoding="utf-8-sig", newline="")
