"""Reading datasets in place from a zip archive (cxrssl.data.archive)."""

import multiprocessing as mp
import zipfile

import pytest

from cxrssl.data import archive
from cxrssl.errors import DataError


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


def test_a_folder_whose_name_holds_the_separator_is_a_plain_path(tmp_path):
    folder = tmp_path / "odd::dir"
    folder.mkdir()
    (folder / "train.csv").write_bytes(b"z")
    assert archive.split(folder / "train.csv") is None and archive.read_bytes(folder / "train.csv") == b"z"
    assert archive.dataset_root(folder) == folder
    named = tmp_path / "a::b.zip"
    make_zip(named, {"D/train.csv": b"w"})
    assert archive.split(f"{named}::D/train.csv") == (str(named), "D/train.csv")
    assert archive.read_bytes(archive.dataset_root(named) / "train.csv") == b"w"
    (tmp_path / "folder.zip").mkdir()
    assert not archive.is_archive(tmp_path / "folder.zip")


def test_the_root_is_found_beside_macos_junk_and_loose_files(tmp_path):
    members = {
        "CheXpert-v1.0-small/train.csv": b"t",
        "CheXpert-v1.0-small/train/p/s/v.jpg": b"j",
        "__MACOSX/CheXpert-v1.0-small/._train.csv": b"junk",
        "README.txt": b"r",
    }
    path = make_zip(tmp_path / "mac.zip", members)
    assert str(archive.dataset_root(path, "train.csv")) == f"{path}::CheXpert-v1.0-small"
    assert str(archive.dataset_root(path)) == f"{path}::"  # README.txt at the top: no single folder
    del members["README.txt"]
    tidy = make_zip(tmp_path / "m2.zip", members)
    assert str(archive.dataset_root(tidy)) == f"{tidy}::CheXpert-v1.0-small"


def test_damaged_deflated_and_encrypted_members_are_oserrors_naming_them(tmp_path):
    path = tmp_path / "d.zip"
    payload = bytes(range(256)) * 400
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("D/a.bin", payload)
        handle.writestr("D/b.bin", payload[::-1])
    with zipfile.ZipFile(path) as handle:
        info = handle.getinfo("D/a.bin")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw = bytearray(path.read_bytes())
    raw[start] ^= 0xFF  # the first byte of the deflate stream
    path.write_bytes(bytes(raw))
    with pytest.raises(OSError, match=r"damaged or unreadable archive member") as caught:
        archive.read_bytes(f"{path}::D/a.bin")
    assert caught.value.filename == f"{path}::D/a.bin"
    assert archive.read_bytes(f"{path}::D/b.bin") == payload[::-1]
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as handle:
        info = handle.getinfo("D/b.bin")
    raw[info.header_offset + 6] |= 0x01  # the local header's "encrypted" flag
    raw[raw.rindex(b"PK\x01\x02") + 8] |= 0x01  # and the central directory's (b.bin's entry is the last)
    path.write_bytes(bytes(raw))
    with pytest.raises(OSError, match=r"damaged or unreadable archive member .*encrypted"):
        archive.read_bytes(f"{path}::D/b.bin")


def test_a_rewritten_or_removed_archive_is_read_afresh(tmp_path):
    path = make_zip(tmp_path / "r.zip", {"D/t.csv": b"old"})
    assert archive.read_bytes(f"{path}::D/t.csv") == b"old"
    make_zip(tmp_path / "new.zip", {"E/t.csv": b"new"}).replace(path)
    assert archive.read_bytes(f"{path}::E/t.csv") == b"new" and not archive.exists(f"{path}::D/t.csv")
    path.unlink()
    with pytest.raises(DataError, match="no such file"):
        archive.exists(f"{path}::E/t.csv")
    archive.close_all()


def test_a_failed_zip_write_closes_the_archive_while_its_file_is_open(tmp_path):
    import gc
    import warnings

    from cxrssl.phantoms.dataset import _ZipWriter

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unraisable error in ZipFile.__del__ would surface here
        with open(tmp_path / "x.zip", "wb") as handle:
            with pytest.raises(KeyError), _ZipWriter(handle) as writer:
                writer.write("a.jpg", b"x")
                raise KeyError("stop")
        gc.collect()
    with zipfile.ZipFile(tmp_path / "x.zip") as done:
        assert done.namelist() == ["CheXpert-v1.0-small/a.jpg"]


def test_a_member_that_inflates_past_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("D/big.png", bytes(5_000_000))  # 5 MB of zeros: a few kB in the archive
    assert path.stat().st_size < 20_000
    with pytest.raises(
        DataError,
        match=r"bomb\.zip::D/big\.png: 5,000,000 bytes once inflated, more than the "
        r"1,000,000 allowed",
    ):
        archive.read_bytes(f"{path}::D/big.png", max_bytes=1_000_000)
    assert len(archive.read_bytes(f"{path}::D/big.png", max_bytes=5_000_000)) == 5_000_000
