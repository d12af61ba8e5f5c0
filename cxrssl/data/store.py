"""The preprocessed image store: every image once, as uint8, in one array file.

Layout of a store folder::

    images.npy   (N, S, S) uint8, memory-mapped when read
    index.csv    one row per stored image: row (position in images.npy), the
                 CheXpert columns, patient, study, origin ("train"/"test" table)
    report.json  what was skipped and why, and the settings
    regions.csv  the dataset's ground-truth finding boxes (the phantoms'
                 regions.csv), copied so that gradcam need not track the
                 dataset folder; only the header for a dataset without boxes

Decoding JPEGs every epoch is the classic bottleneck of chest X-ray training;
with the store, a batch is an index into a memory map. The preprocess stage
writes it (:mod:`cxrssl.data.writer`); the training stages only read it, here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrssl.errors import DataError

IMAGES, INDEX, REPORT = "images.npy", "index.csv", "report.json"


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

    def settings(self) -> dict:
        """What made the store: ``{"preprocess": ..., "data": ...}`` from its ``report.json``."""
        path = self.folder / REPORT
        try:
            report = json.loads(path.read_text())
            return {"preprocess": dict(report["preprocess"]), "data": dict(report["data"])}
        except (OSError, ValueError, KeyError, TypeError):
            raise DataError(f"{path}: missing or unreadable; rerun the preprocess stage") from None

    def load(self, rows: Sequence[int]) -> np.ndarray:
        """Copy the given rows into memory: (len(rows), S, S) uint8."""
        return np.asarray(self.images[np.asarray(rows)])
