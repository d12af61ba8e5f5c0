"""Writing the store's images: decode and preprocess every image once, in parallel, into ``images.npy``."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cxrssl.data.chexpert import Problem
from cxrssl.data.images import PreprocessConfig, load_and_preprocess
from cxrssl.data.store import IMAGES
from cxrssl.errors import DataError
from cxrssl.io import preallocate
from cxrssl.parallel import process_pool, worker_count
from cxrssl.progress import progress as progress_bar

_config: PreprocessConfig | None = None


def _init_worker(config: PreprocessConfig) -> None:
    global _config
    _config = config
    import cv2

    cv2.setNumThreads(1)


def _process(job: tuple[int, list[str]]) -> tuple[int, np.ndarray, list[str | None]]:
    """Preprocess a chunk of files: (first position, (n, S, S) images, error or None per file)."""
    first, files = job
    out = np.zeros((len(files), _config.image_size, _config.image_size), dtype=np.uint8)
    errors: list[str | None] = []
    for i, file in enumerate(files):
        try:
            out[i] = load_and_preprocess(file, _config)
            errors.append(None)
        except DataError as error:
            errors.append(str(error))
    return first, out, errors


CHUNK = 32  # files per task: one pickled array per chunk instead of one per image


def build_store(
    files: Sequence[str],
    out: Path,
    config: PreprocessConfig,
    workers: int,
    skip_bad: bool,
    progress: bool = True,
    listed_in: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[Problem]]:
    """Decode and preprocess ``files`` in parallel into ``out/images.npy``.

    Memory stays flat however many images there are: at most a few chunks per
    worker are in flight, and results go into a memory map in order.

    Args:
        files: image paths; the i-th is stored at row i.
        out: an existing, empty folder.
        config: resize/denoise/CLAHE settings.
        workers: processes to use (0 = one per core).
        skip_bad: skip unreadable images (recorded) instead of failing on the first.
        progress: show a progress bar.
        listed_in: per file, where the table lists it ("train.csv, line 12"),
            for error messages.

    Returns:
        A boolean mask of the rows that were stored, and the problems found.

    Raises:
        DataError: an unreadable image, unless ``skip_bad``.
    """
    images = np.lib.format.open_memmap(
        out / IMAGES, mode="w+", dtype=np.uint8, shape=(len(files), config.image_size, config.image_size)
    )
    preallocate(out / IMAGES)  # a full disk: ENOSPC here, naming the output, instead of SIGBUS mid-write
    ok = np.zeros(len(files), dtype=bool)
    problems: list[Problem] = []
    jobs = [(first, list(files[first : first + CHUNK])) for first in range(0, len(files), CHUNK)]
    bar = progress_bar(total=len(files), desc="preprocess", enabled=progress)

    def store(first: int, chunk: np.ndarray, errors: list[str | None]) -> str | None:
        """Keep a finished chunk; return the first error that must stop the stage."""
        for i, error in enumerate(errors):
            position = first + i
            if error is None:
                ok[position] = True
                continue
            if listed_in is not None:
                error = f"{error} (listed in {listed_in[position]})"
            if not skip_bad:
                return error
            problems.append(Problem(files[position], None, error.removeprefix(f"{files[position]}: ")))
        images[first : first + len(chunk)] = chunk
        bar.update(len(chunk))
        return None

    # Never raise or terminate() while tasks are queued (terminate can hang: CPython #78178):
    # on an error stop submitting, let the few chunks in flight finish, close, join, then raise.
    in_flight = 4 * worker_count(workers)  # bounds memory: at most this many chunks wait in RAM
    stop: str | None = None
    pool = process_pool(workers, _init_worker, (config,))
    try:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.apply_async(_process, (job,)))
            if len(pending) >= in_flight:
                stop = store(*pending.popleft().get())
                if stop:
                    break
        while pending:
            result = pending.popleft().get()
            if stop is None:
                stop = store(*result)
    finally:
        bar.close()
        pool.close()
        pool.join()
    if stop is not None:
        raise DataError(f"{stop}. Set data.skip_invalid: true to skip unreadable images.")
    images.flush()
    return ok, problems
