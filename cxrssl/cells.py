"""A fine-tuning cell's files on disk: what ``finetune@<init>-<pct>`` writes and ``evaluate``/``gradcam`` read.

A cell's folder (``models/finetune/<init>-<pct>/``) holds:

* ``model-seed<k>.pt``: the classifier selected on val for each fine-tuning seed;
* ``predictions.csv``: the sigmoid scores of every val and test image, per seed
  (columns ``split, seed, row, patient, score:<class>...``);
* ``cell.json``: the cell's init, label percent and protocol.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import torch

from cxrssl.data.schema import CLASSES
from cxrssl.errors import DataError
from cxrssl.io import atomic_dir, write_csv, write_json

SCORE_COLUMNS = [f"score:{name}" for name in CLASSES]
PREDICTION_COLUMNS = ["split", "seed", "row", "patient", *SCORE_COLUMNS]
PREDICTIONS, INFO = "predictions.csv", "cell.json"
_MODEL = re.compile(r"model-seed(\d+)\.pt")


def model_name(seed: int) -> str:
    return f"model-seed{seed}.pt"


def write_cell(out: Path, models: dict[int, dict], predictions: pd.DataFrame, info: dict) -> None:
    """Write a cell's folder atomically: a state dict per seed, the predictions and ``cell.json``."""
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack column {missing[0]!r}")
    with atomic_dir(out) as tmp:
        for seed, state in models.items():
            torch.save(state, tmp / model_name(seed))
        write_csv(tmp / PREDICTIONS, predictions[PREDICTION_COLUMNS])
        write_json(tmp / INFO, info)


def _rerun(folder: Path) -> str:
    return f"rerun finetune@{folder.name}"


def read_predictions(folder: Path) -> pd.DataFrame:
    """The cell's ``predictions.csv``, its columns checked."""
    path = folder / PREDICTIONS
    if not path.is_file():
        raise DataError(f"{path}: missing; run finetune@{folder.name} first")
    frame = pd.read_csv(path)
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; {_rerun(folder)}")
    return frame


def read_info(folder: Path) -> dict:
    """The cell's ``cell.json`` (init, pct, protocol)."""
    path = folder / INFO
    try:
        info = json.loads(path.read_text())
        str(info["protocol"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{path}: missing or unreadable; {_rerun(folder)}") from None
    return info


def model_files(folder: Path) -> dict[int, Path]:
    """{seed: model file} of the cell, in seed order; an error when there is none."""
    found = {int(m.group(1)): p for p in folder.glob("model-seed*.pt") if (m := _MODEL.fullmatch(p.name))}
    if not found:
        raise DataError(f"{folder}: no model-seed<k>.pt; run finetune@{folder.name} first")
    return dict(sorted(found.items()))
