"""The preprocessed image store: every image once, as uint8, in one array file.

Layout of a store folder::

    images.npy   (N, S, S) uint8, memory-mapped when read
    index.csv    one row per stored image: row (position in images.npy), the
                 CheXpert columns, patient, study, origin ("train"/"test" table)
    report.json  what was skipped and why, settings, timing

Decoding JPEGs every epoch is the classic bottleneck of chest X-ray training;
with the store, a batch is an index into a memory map.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrssl.data.chexpert import Problem
from cxrssl.data.images import PreprocessConfig, load_and_preprocess
from cxrssl.errors import DataError
from cxrssl.parallel import process_pool
from cxrssl.progress import progress as progress_bar

IMAGES, INDEX, REPORT = "images.npy", "index.csv", "report.json"

_config: PreprocessConfig | None = None


def _init_worker(config: PreprocessConfig) -> None:
    global _config
    _config = config
    import cv2

    cv2.setNumThreads(1)


def _process(job: tuple[int, str]) -> tuple[int, np.ndarray | None, str | None]:
    position, file = job
    try:
        return position, load_and_preprocess(file, _config), None
    except DataError as error:
        return position, None, str(error)


def _chunked(jobs: Sequence, size: int) -> Iterator:
    for start in range(0, len(jobs), size):
        yield jobs[start:start + size]


def build_store(files: Sequence[str], out: Path, config: PreprocessConfig, workers: int,
                skip_bad: bool, progress: bool = True) -> tuple[np.ndarray, list[Problem]]:
    """Decode and preprocess ``files`` in parallel into ``out/images.npy``.

    Memory stays flat however many images there are: results are written into
    a memory map as they arrive, in order, from a bounded pool.

    Args:
        files: image paths; the i-th is stored at row i.
        out: an existing, empty folder.
        config: resize/denoise/CLAHE settings.
        workers: processes to use (0 = one per core).
        skip_bad: skip unreadable images (recorded) instead of failing on the first.
        progress: show a progress bar.

    Returns:
        A boolean mask of the rows that were stored, and the problems found.

    Raises:
        DataError: an unreadable image, unless ``skip_bad``.
    """
    images = np.lib.format.open_memmap(out / IMAGES, mode="w+", dtype=np.uint8,
                                       shape=(len(files), config.size, config.size))
    ok = np.zeros(len(files), dtype=bool)
    problems: list[Problem] = []
    jobs = list(enumerate(files))
    bar = progress_bar(total=len(files), desc="preprocess", enabled=progress)
    with process_pool(workers, _init_worker, (config,)) as pool:
        for position, array, error in pool.imap(_process, jobs, chunksize=64):
            if error is not None:
                if not skip_bad:
                    pool.terminate()
                    raise DataError(f"{error}. Set data.skip_invalid: true to skip unreadable images.")
                problems.append(Problem(files[position], None, error.removeprefix(f"{files[position]}: ")))
            else:
                images[position] = array
                ok[position] = True
            bar.update()
    bar.close()
    images.flush()
    del images
    return ok, problems


class ImageStore:
    """Read access to a store folder: ``store.images[row]`` is a (S, S) uint8 array."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        for name in (IMAGES, INDEX):
            if not (folder / name).is_file():
                raise DataError(f"{folder / name}: missing; run the preprocess stage first")
        self.folder = folder
        self.images = np.load(folder / IMAGES, mmap_mode="r")
        self.index = pd.read_csv(folder / INDEX)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def load(self, rows: Sequence[int]) -> np.ndarray:
        """Copy the given rows into memory: (len(rows), S, S) uint8."""
        return np.asarray(self.images[np.asarray(rows)])
