"""Where the images come from: params.yaml section ``data``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxrssl.data.chexpert import Report, read_dataset
from cxrssl.errors import DataError
from cxrssl.params import require

SOURCES = ("phantoms", "chexpert")


@dataclass(frozen=True)
class DataConfig:
    """The dataset to run on.

    Attributes:
        source: "phantoms" (the generated default) or "chexpert" (a real download).
        root: the dataset folder: the phantom stage's output, or a
            ``CheXpert-v1.0``/``CheXpert-v1.0-small`` folder.
        train_csv: the training table, relative to ``root`` or absolute
            (CheXpert's ``train.csv``, or a user's ``train_split.csv``).
        test_csv: the test table (CheXpert's ``valid.csv`` or a user's
            ``test_split.csv``); null carves the test set out of train by patient.
        skip_invalid: skip bad rows and unreadable images, and report them,
            instead of stopping at the first.
    """

    source: str = "phantoms"
    root: str = "data/phantoms/CheXpert-v1.0-small"
    train_csv: str = "train.csv"
    test_csv: str | None = "valid.csv"
    skip_invalid: bool = False

    def validate(self) -> None:
        require(self.source in SOURCES, "data.source", self.source, f"one of {', '.join(SOURCES)}")
        require(bool(self.root), "data.root", self.root, "a dataset folder")
        require(bool(self.train_csv), "data.train_csv", self.train_csv, "a CSV file name")


def read_source(config: DataConfig, report: Report) -> pd.DataFrame:
    """Read and validate the configured dataset's tables (see :func:`read_dataset`)."""
    root = Path(config.root)
    if config.source == "phantoms" and not root.is_dir():
        raise DataError(f"data.root: {root} does not exist; the phantom dataset is made by "
                        "the phantoms stage (dvc repro phantoms)")
    return read_dataset(root, config.train_csv, config.test_csv, report)
