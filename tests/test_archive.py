"""Reading datasets in place from a zip archive (cxrssl.data.archive)."""

import multiprocessing as mp
import zipfile

import pytest

from cxrssl.data import archive


def make_zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return path


def test_dataset_root_is_the_one_top_folder_or_the_archive_itself(tmp_path):
    nested = make_zip(tmp_path / "a.zip", {"CheXpert-v1.0-small/train.csv": b"x", "CheXpert-v1.0-small/t/1.jpg": b"j"})
    root = archive.dataset_root(nested)
    assert str(root) == f"{nested}::CheXpert-v1.0-small"
    assert archive.exists(root / "train.csv") and not archive.exists(root / "valid.csv")
    assert archive.read_bytes(root / "t" / "1.jpg") == b"j"
    flat = make_zip(tmp_path / "b.zip", {"train.csv": b"y", "sub/1.jpg": b"k"})
    root = archive.dataset_root(flat)
    assert str(root) == f"{flat}::"
    assert archive.read_bytes(root / "train.csv") == b"y" and archive.read_bytes(root / "sub/1.jpg") == b"k"
    assert archive.dataset_root(tmp_path) == tmp_path  # a folder is its own root
    with pytest.raises(FileNotFoundError, match="no such file in the archive"):
        archive.read_bytes(root / "missing.jpg")


def test_plain_paths_read_as_files(tmp_path):
    (tmp_path / "f.txt").write_bytes(b"plain")
    assert archive.split(tmp_path / "f.txt") is None and archive.exists(tmp_path / "f.txt")
    assert archive.read_bytes(tmp_path / "f.txt") == b"plain"
    assert archive.is_archive("x/CheXpert-v1.0-small.zip") and not archive.is_archive("x/CheXpert-v1.0-small")


def _read_all(args):
    ref, names = args
    return [archive.read_bytes(f"{ref}::{n}") for n in names]


def test_each_process_reads_through_its_own_handle(tmp_path):
    members = {f"m{i}.bin": bytes([i]) * (50_000 + i) for i in range(40)}
    path = make_zip(tmp_path / "c.zip", members)
    archive.read_bytes(f"{path}::m0.bin")  # the parent opens it first; forked children must not share its offset
    names = list(members)
    with mp.get_context("fork").Pool(4) as pool:
        results = pool.map(_read_all, [(str(path), names[i::4] * 5) for i in range(4)])
    for i, got in enumerate(results):
        assert got == [members[n] for n in names[i::4] * 5]
    archive.close_all()
