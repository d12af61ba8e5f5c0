"""Where the images come from: params.yaml section ``data``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxrssl.data import nih
from cxrssl.data.chexpert import Report, read_dataset
from cxrssl.errors import DataError
from cxrssl.params import require

SOURCES = ("phantoms", "chexpert", "nih")


@dataclass(frozen=True)
class DataConfig:
    """The dataset to run on.

    Attributes:
        source: "phantoms" (the generated default), "chexpert" (a real
            download) or "nih" (NIH ChestX-ray14, see :mod:`cxrssl.data.nih`).
        root: the dataset: the phantom stage's output (a zip archive), a
            ``CheXpert-v1.0``/``CheXpert-v1.0-small`` folder or its ``.zip``
            as downloaded (read in place), or an NIH folder.
        train_csv: the training table, relative to ``root`` or absolute
            (CheXpert's ``train.csv``, a user's ``train_split.csv``, or NIH's
            ``Data_Entry_2017_v2020.csv``, which holds train and test).
        test_csv: the test table (CheXpert's ``valid.csv``, a user's
            ``test_split.csv``, or NIH's ``test_list.txt`` of image names);
            null carves the test set out of train by patient.
        skip_invalid: skip bad rows and unreadable images, and report them,
            instead of stopping at the first.
    """

    source: str
    root: str
    train_csv: str
    test_csv: str | None
    skip_invalid: bool

    def validate(self, section: str = "data") -> None:
        require(self.source in SOURCES, f"{section}.source", self.source, f"one of {', '.join(SOURCES)}")
        require(bool(self.root), f"{section}.root", self.root, "a dataset folder or .zip file")
        require(bool(self.train_csv), f"{section}.train_csv", self.train_csv, "a CSV file name")


def read_source(config: DataConfig, report: Report) -> pd.DataFrame:
    """Read and validate the configured dataset's tables (see :func:`read_dataset`)."""
    root = Path(config.root)
    if config.source == "phantoms" and not root.exists():
        raise DataError(
            f"data.root: {root} does not exist; the phantom dataset is made by the phantoms stage (dvc repro phantoms)"
        )
    if config.source == "nih":
        return nih.read_dataset(root, config.train_csv, config.test_csv, report)
    return read_dataset(root, config.train_csv, config.test_csv, report)
