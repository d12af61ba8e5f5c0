"""Atomic outputs: a stage that cannot write fails clearly and leaves the previous good output intact."""

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile

import pandas as pd
import pytest

from cxrssl import io
from cxrssl.errors import CxrsslError
from cxrssl.io import atomic_dir, write_csv, write_json


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_writing_a_file_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json(path, {"auroc": 0.8})
    monkeypatch.setattr(io.json, "dump", no_space)
    with pytest.raises(CxrsslError, match=f"{path}: cannot write it \\(No space left on device\\); the previous"):
        write_json(path, {"auroc": 0.9})
    assert json.loads(path.read_text()) == {"auroc": 0.8}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary file left


def test_a_full_disk_while_building_a_folder_keeps_the_previous_one(tmp_path):
    out = tmp_path / "store"
    with atomic_dir(out) as tmp:
        (tmp / "images.npy").write_text("good")
    with pytest.raises(CxrsslError, match=f"{out}: cannot write it \\(No space left on device\\)"):
        with atomic_dir(out) as tmp:
            (tmp / "images.npy").write_text("half")
            no_space()
    assert (out / "images.npy").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_other_errors_inside_a_folder_block_are_not_called_write_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_dir(tmp_path / "out"):
            open(tmp_path / "missing-input.csv").close()
    assert not (tmp_path / "out").exists()


def test_a_folder_that_cannot_be_written_is_one_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "plots" / "curve.csv"
    path.parent.mkdir()
    write_csv(path, pd.DataFrame({"x": [1]}))

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)  # what a read-only folder does, even for root
    with pytest.raises(CxrsslError, match=f"{path}: cannot write in {path.parent} \\(Permission denied\\)"):
        write_csv(path, pd.DataFrame({"x": [2]}))
    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    with pytest.raises(CxrsslError, match=f"{tmp_path / 'store'}: cannot write in {tmp_path}"):
        with atomic_dir(tmp_path / "store"):
            pass
    assert path.read_text() == "x\n1\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_keeps_its_output(tmp_path):
    path = tmp_path / "ro" / "metrics.json"
    write_json(path, {"a": 1})
    path.parent.chmod(0o555)
    try:
        with pytest.raises(CxrsslError, match="cannot write in"):
            write_json(path, {"a": 2})
    finally:
        path.parent.chmod(0o755)
    assert json.loads(path.read_text()) == {"a": 1}


def test_leftovers_of_a_killed_writer_are_swept_but_a_live_ones_are_kept(tmp_path):
    dead = tmp_path / ".store.tmp-999999999-abc"  # a pid no process has
    dead.mkdir()
    (dead / "images.npy").write_bytes(b"x" * 100)
    old = tmp_path / ".store.old-999999998"
    old.mkdir()
    live = tmp_path / f".store.tmp-{os.getppid()}-xyz"  # a process that is running
    live.mkdir()
    legacy = tmp_path / ".metrics.json.tmp-k2j3h4"  # no pid: from before pids were in the name
    legacy.write_text("{}")
    with atomic_dir(tmp_path / "store") as tmp:
        (tmp / "images.npy").write_text("new")
    write_json(tmp_path / "metrics.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["store", "metrics.json", live.name])


def _under_a_file_size_limit(limit: int, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in Python where no file may grow past ``limit`` bytes: a disk that is full."""

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-c", code], preexec_fn=limit_files, capture_output=True, text=True, cwd=os.getcwd()
    )


def test_a_store_on_a_full_disk_fails_before_writing_and_leaves_nothing(tmp_path):
    """A memory map writes into a sparse file's holes: with no space left, that is a SIGBUS, not an error."""
    code = f"""
import numpy as np
from pathlib import Path
from cxrssl.io import atomic_dir, preallocate
with atomic_dir(Path({str(tmp_path / "store")!r})) as tmp:
    images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(100, 64, 64))
    preallocate(tmp / "images.npy")
    images[:] = 1
"""
    result = _under_a_file_size_limit(100_000, code)  # the map needs 409,728 bytes
    assert result.returncode == 1 and result.stderr.strip().endswith(
        f"cxrssl.errors.CxrsslError: {tmp_path / 'store'}: cannot write it (File too large); the previous output, "
        "if any, is left as it was"
    )
    assert list(tmp_path.iterdir()) == []
