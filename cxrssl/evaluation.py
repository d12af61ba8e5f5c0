"""The study's evaluation of one fine-tuned cell (init, label percent) on the test split.

Per class: AUROC, average precision, and F1 and Cohen's kappa at the
F1-optimal threshold chosen on val; macro means over the classes with both
labels in test (a class without them, or one the test or training data do
not label at all, is reported as null with a note, and left out of the
macro mean); ``auroc_5`` over the CheXpert competition
classes. Each value comes with a 95% bootstrap interval, resampling test
patients. With several fine-tuning seeds, each metric is the mean over seeds
(``*_sd`` their standard deviation), and each resample is scored the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxrssl.data.schema import CLASSES, COMPETITION_CLASSES
from cxrssl.metrics import auroc_ap, f1_kappa, f1_threshold, interval, patient_bootstrap
from cxrssl.params import require

METRICS = ("auroc", "ap", "f1", "kappa")


@dataclass(frozen=True)
class EvaluateConfig:
    """params.yaml ``evaluate``.

    Attributes:
        bootstrap: resamples of test patients for the intervals.
        confidence: level of the intervals.
        seed: seeds the resampling.
        cross_dataset: null, or another dataset (``data``'s keys: source,
            root, train_csv, test_csv, skip_invalid) whose test images every
            cell's classifier is also scored on (:mod:`cxrssl.cross_dataset`).
    """

    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    cross_dataset: dict | None = None

    def validate(self) -> None:
        require(self.bootstrap >= 10, "evaluate.bootstrap", self.bootstrap, "an integer >= 10")
        require(0.5 <= self.confidence < 1, "evaluate.confidence", self.confidence, "a number in [0.5, 1)")
        require(self.seed >= 0, "evaluate.seed", self.seed, "a non-negative integer")


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(CLASSES)].to_numpy(dtype=float)


def evaluate_cell(predictions: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame, config: EvaluateConfig
                  ) -> tuple[dict, pd.DataFrame]:
    """Metrics of one cell.

    Args:
        predictions: the finetune stage's predictions.csv (split, seed, row, score:<class>...).
        val, test: the split stage's val.csv and test.csv (labels after the uncertainty policy; NaN = masked).

    Returns:
        The macro summary (for metrics/evaluate.json) and a per-class table.
    """
    seeds = sorted(predictions["seed"].unique())
    weights = np.vstack([np.ones((1, len(test))),
                         patient_bootstrap(test["patient"].to_numpy(), config.bootstrap, config.seed)])
    y_val, y_test = _labels(val), _labels(test)
    scores = {seed: _scores(predictions, seed, val, test) for seed in seeds}  # (val, test) score matrices
    # values[metric][class] -> (seeds, 1 + B) array
    values = {m: {} for m in METRICS}
    thresholds = {}
    notes = {}
    for k, name in enumerate(CLASSES):
        keep = ~np.isnan(y_test[:, k])
        y = y_test[keep, k]
        if not keep.any():
            notes[name] = f"no test image has a {name} label (the test data do not label it): left out"
            continue
        if np.isnan(y_val[:, k]).all():
            notes[name] = f"no val image has a {name} label (the training data do not label it): left out"
            continue
        if y.sum() == 0 or y.sum() == len(y):
            notes[name] = f"test has no {'positive' if y.sum() == 0 else 'negative'} {name} label: left out"
            continue
        per_seed = {m: [] for m in METRICS}
        thresholds[name] = []
        keep_val = ~np.isnan(y_val[:, k])
        for seed in seeds:
            scores_val, scores_test = scores[seed][0][:, k], scores[seed][1][:, k]
            threshold = f1_threshold(y_val[keep_val, k], scores_val[keep_val])
            if np.isnan(threshold):
                threshold = 0.5
                notes[name] = f"val has no positive {name} label: F1 and kappa use threshold 0.5"
            thresholds[name].append(threshold)
            w, s = weights[:, keep], scores_test[keep]
            roc, ap = auroc_ap(y, s, w)
            per_seed["auroc"].append(roc)
            per_seed["ap"].append(ap)
            f1, kappa = f1_kappa(y, s, threshold, w)
            per_seed["f1"].append(f1)
            per_seed["kappa"].append(kappa)
        for m in METRICS:
            values[m][name] = np.array(per_seed[m])

    rows = []
    for k, name in enumerate(CLASSES):
        y = y_test[~np.isnan(y_test[:, k]), k]
        row = {"class": name, "test_positive": int(y.sum()), "test_negative": int(len(y) - y.sum()),
               "note": notes.get(name, "")}
        if name in values["auroc"]:
            row["threshold"] = float(np.mean(thresholds[name]))
            for m in METRICS:
                samples = values[m][name].mean(axis=0)  # mean over seeds, per resample
                low, high = interval(samples[1:], config.confidence)
                row.update({m: samples[0], f"{m}_low": low, f"{m}_high": high})
        rows.append(row)
    table = pd.DataFrame(rows)

    summary: dict = {}
    for m in METRICS:
        groups = [("macro", list(values[m]))]
        if m == "auroc":
            groups.append(("5", [c for c in COMPETITION_CLASSES if c in values[m]]))
        for suffix, members in groups:
            key = f"{m}_{suffix}"
            if not members:
                summary[key] = None
                continue
            stacked = np.stack([values[m][c] for c in members])  # (classes, seeds, 1 + B)
            with np.errstate(invalid="ignore"):
                per_seed = np.nanmean(stacked, axis=0)  # (seeds, 1 + B)
            samples = per_seed.mean(axis=0)
            low, high = interval(samples[1:], config.confidence)
            summary[key] = samples[0]
            summary[f"{key}_low"], summary[f"{key}_high"] = low, high
            if len(seeds) > 1:
                summary[f"{key}_sd"] = float(per_seed[:, 0].std(ddof=1))
    summary["classes"] = len(values["auroc"])
    summary["seeds"] = len(seeds)
    summary["test_images"] = len(test)
    summary["test_patients"] = int(test["patient"].nunique())
    return _rounded(summary), table


def _scores(predictions: pd.DataFrame, seed: int, val: pd.DataFrame, test: pd.DataFrame
            ) -> tuple[np.ndarray, np.ndarray]:
    """The seed's val and test scores (N, classes), in the order of the split tables."""
    columns = [f"score:{name}" for name in CLASSES]
    out = []
    for split, frame in (("val", val), ("test", test)):
        part = predictions[(predictions["split"] == split) & (predictions["seed"] == seed)].set_index("row")
        missing = np.setdiff1d(frame["row"].to_numpy(), part.index.to_numpy())
        if len(missing):
            raise ValueError(f"no {split} prediction for store row {missing[0]} (seed {seed})")
        out.append(part.loc[frame["row"].to_numpy(), columns].to_numpy(dtype=float))
    return out[0], out[1]


def _rounded(summary: dict) -> dict:
    return {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else
                round(float(v), 5) if isinstance(v, (float, np.floating)) else v) for k, v in summary.items()}
