"""Cross-dataset evaluation: the study's classifiers on another dataset's images (``evaluate.cross_dataset``).

A model fine-tuned on one dataset (the phantoms, CheXpert, NIH) is scored on
the test images of another, over the classes both label: a class the
external dataset does not label (NIH labels 8 of CheXpert's 14) or that the
training data never labelled is left out with a note. The external images go
through the run's own preprocessing at the models' resolution; their labels
are taken with U-Ignore (an uncertain label is masked, as is usual for test
labels); F1 and kappa use the thresholds chosen on the training dataset's val
split, as the model would be deployed. The external "test set" is the
dataset's test table (CheXpert's ``valid.csv``, NIH's ``test_list.txt``) when
one is given, otherwise every image of its table: the models never saw any of
them.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cxrssl.cells import SCORE_COLUMNS, model_files
from cxrssl.data.chexpert import Report
from cxrssl.data.images import PreprocessConfig
from cxrssl.data.schema import CLASSES
from cxrssl.data.sources import DataConfig, read_source
from cxrssl.data.splits import apply_policy
from cxrssl.data.writer import build_store
from cxrssl.errors import DataError
from cxrssl.evaluation import EvaluateConfig, evaluate_cell
from cxrssl.finetune import load_classifier, predict
from cxrssl.models import pick_device


class CrossDatasetConfig(DataConfig):
    """params.yaml ``evaluate.cross_dataset``: the external dataset, with ``data``'s keys."""

    def validate(self, section: str = "evaluate.cross_dataset") -> None:
        super().validate(section)


def load_external(
    config: CrossDatasetConfig, preprocess: PreprocessConfig, size: int
) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """The external test images and labels.

    Returns:
        A frame with ``row`` (0..N-1), ``patient``, ``Path`` and the 14 label
        columns (1 / 0, NaN where masked), the (N, size, size) uint8 images,
        and a description (source, root, counts, skipped images).
    """
    report = Report(skip=config.skip_invalid, max_bytes=preprocess.max_file_bytes)
    frame = read_source(config, report)
    if (frame["origin"] == "test").any():
        frame = frame[frame["origin"] == "test"].reset_index(drop=True)
    with tempfile.TemporaryDirectory(prefix="cxrssl-cross-") as tmp:
        listed_in = [f"{table}, line {line}" for table, line in zip(frame["table"], frame["line"])]
        ok, problems = build_store(
            frame["file"].tolist(),
            Path(tmp),
            replace(preprocess, image_size=size),
            preprocess.workers,
            config.skip_invalid,
            progress=False,
            listed_in=listed_in,
        )
        images = np.load(Path(tmp) / "images.npy")[ok]
    report.problems.extend(problems)
    frame = frame[ok].reset_index(drop=True)
    if frame.empty:
        raise DataError(f"evaluate.cross_dataset: no image of {config.root} could be read")
    labels = apply_policy(frame[list(CLASSES)].to_numpy(dtype=float), "ignore")
    out = pd.DataFrame(labels, columns=list(CLASSES))
    out.insert(0, "Path", frame["Path"].to_numpy())
    out.insert(0, "patient", frame["patient"].to_numpy())
    out.insert(0, "row", np.arange(len(out)))
    about = {
        **{k: v for k, v in asdict(config).items() if k != "skip_invalid"},
        "test_images": len(out),
        "test_patients": int(out["patient"].nunique()),
        "labelled_classes": [c for c in CLASSES if (~np.isnan(out[c].to_numpy())).any()],
        **report.as_dict(limit=10),
    }
    return out, images, about


def external_predictions(
    cell_predictions: pd.DataFrame,
    models: dict[int, torch.nn.Module],
    images: np.ndarray,
    device: torch.device,
    amp: bool,
) -> pd.DataFrame:
    """The cell's own val predictions (for its thresholds) and each seed model's scores of the external images."""
    parts = [cell_predictions[cell_predictions["split"] == "val"]]
    tensor = torch.from_numpy(images)
    for seed, model in models.items():
        scores = predict(model, tensor, device, amp)
        part = pd.DataFrame(scores, columns=SCORE_COLUMNS)
        part.insert(0, "patient", "")
        part.insert(0, "row", np.arange(len(images)))
        part.insert(0, "seed", seed)
        part.insert(0, "split", "test")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def score_cells(
    config: CrossDatasetConfig,
    preprocess: PreprocessConfig,
    finetune: Path,
    cells: dict[str, pd.DataFrame],
    val: pd.DataFrame,
    evaluate: EvaluateConfig,
    log=print,
) -> dict:
    """Every cell's classifiers scored on the external dataset: ``{"dataset": {...}, init: {pct: {...}}}``.

    Args:
        cells: ``{"<init>-<pct>": the cell's predictions.csv}``; the models are
            read from ``finetune/<cell>/``.
        val: the training data's val split (the cells' thresholds come from it).
    """
    models = {cell: model_files(finetune / cell) for cell in cells}
    first = next(iter(models.values()))
    size = int(load_classifier(next(iter(first.values())))[1]["image_size"])
    external, images, about = load_external(config, preprocess, size)
    log(
        f"evaluate: cross-dataset {config.source} at {config.root}: {len(external)} images, classes "
        f"{', '.join(about['labelled_classes'])}"
    )
    device = pick_device()
    out: dict = {"dataset": about}
    for cell, paths in models.items():
        init, pct = cell.rsplit("-", 1)
        loaded = {seed: load_classifier(path)[0] for seed, path in paths.items()}
        predictions = external_predictions(cells[cell], loaded, images, device, amp=True)
        out.setdefault(init, {})[pct], _ = evaluate_cell(predictions, val, external, evaluate)
    return out
