"""The study's evaluation of one fine-tuned cell (init, label percent), on val and on test.

Per class: AUROC, average precision, and F1 and Cohen's kappa at the
F1-optimal threshold chosen on val; macro means over the classes with both
labels in test (a class without them, or one the test or training data do
not label at all, is reported as null with a note, and left out of the
macro mean); ``auroc_5`` over the CheXpert competition
classes. Each value comes with a 95% bootstrap interval, resampling test
patients. With several fine-tuning seeds, each metric is the mean over seeds
(``*_sd`` their standard deviation), and each resample is scored the same way.

The same AUROC and AP are computed on val (resampling val patients): every
choice of the study (defaults, variants) is made on those; test is read once,
for the configuration chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrssl.cells import read_info, read_predictions
from cxrssl.data.schema import CLASSES, COMPETITION_CLASSES
from cxrssl.errors import DataError
from cxrssl.metrics import auroc_ap, f1_kappa, f1_threshold, interval, patient_bootstrap
from cxrssl.params import require

METRICS = ("auroc", "ap", "f1", "kappa")
VAL_METRICS = ("auroc", "ap")  # F1 and kappa on val would be scored at thresholds val itself chose


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

    bootstrap: int
    confidence: float
    seed: int
    cross_dataset: dict | None

    def validate(self) -> None:
        require(self.bootstrap >= 10, "evaluate.bootstrap", self.bootstrap, "an integer >= 10")
        require(0.5 <= self.confidence < 1, "evaluate.confidence", self.confidence, "a number in [0.5, 1)")
        require(self.seed >= 0, "evaluate.seed", self.seed, "a non-negative integer")


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(CLASSES)].to_numpy(dtype=float)


def evaluate_cell(
    predictions: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame, config: EvaluateConfig
) -> tuple[dict, pd.DataFrame]:
    """Metrics of one cell, on test and on val.

    Args:
        predictions: the finetune stage's predictions.csv (split, seed, row, score:<class>...).
        val, test: the split stage's val.csv and test.csv (labels after the uncertainty policy; NaN = masked).

    Returns:
        The macro summary (for metrics/evaluate.json) and a per-class table.
        Test metrics are the plain keys (``auroc_macro``, ``auroc_macro_low``,
        ...); the val split's AUROC and AP, with intervals from resampling val
        patients, are the same keys prefixed ``val_``: what variants are
        compared and chosen on. F1 and kappa are not given on val, whose labels
        chose their thresholds.
    """
    seeds = sorted(predictions["seed"].unique())
    y_val, y_test = _labels(val), _labels(test)
    scores = {seed: _scores(predictions, seed, val, test) for seed in seeds}  # (val, test) score matrices
    thresholds, notes = {}, {}
    for k, name in enumerate(CLASSES):
        keep_val = ~np.isnan(y_val[:, k])
        if not keep_val.any():
            continue
        thresholds[name] = [f1_threshold(y_val[keep_val, k], scores[seed][0][keep_val, k]) for seed in seeds]
        if np.isnan(thresholds[name]).any():
            thresholds[name] = [0.5 if np.isnan(t) else t for t in thresholds[name]]
            notes[name] = f"val has no positive {name} label: F1 and kappa use threshold 0.5"
    test_values, test_notes = _per_class(
        y_test, {seed: scores[seed][1] for seed in seeds}, test, config, thresholds, "test", y_val
    )
    val_values, _ = _per_class(y_val, {seed: scores[seed][0] for seed in seeds}, val, config, None, "val", y_val)
    notes = {**notes, **test_notes}

    rows = []
    for k, name in enumerate(CLASSES):
        y = y_test[~np.isnan(y_test[:, k]), k]
        row = {
            "class": name,
            "test_positive": int(y.sum()),
            "test_negative": int(len(y) - y.sum()),
            "note": notes.get(name, ""),
        }
        if name in test_values["auroc"]:
            row["threshold"] = float(np.mean(thresholds[name]))
            for m in METRICS:
                row.update(_point_and_interval(m, test_values[m][name].mean(axis=0), config.confidence))
        if name in val_values["auroc"]:
            for m in VAL_METRICS:
                row.update(_point_and_interval(f"val_{m}", val_values[m][name].mean(axis=0), config.confidence))
        rows.append(row)
    table = pd.DataFrame(rows)

    summary = _macro(test_values, METRICS, config.confidence, len(seeds))
    summary["classes"] = len(test_values["auroc"])
    summary["seeds"] = len(seeds)
    summary["test_images"] = len(test)
    summary["test_patients"] = int(test["patient"].nunique())
    summary.update({f"val_{k}": v for k, v in _macro(val_values, VAL_METRICS, config.confidence, len(seeds)).items()})
    summary["val_classes"] = len(val_values["auroc"])
    summary["val_images"] = len(val)
    summary["val_patients"] = int(val["patient"].nunique())
    return _rounded(summary), table


def _per_class(
    y_all: np.ndarray,
    scores: dict[int, np.ndarray],
    frame: pd.DataFrame,
    config: EvaluateConfig,
    thresholds: dict[str, list[float]] | None,
    split: str,
    y_val: np.ndarray,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """values[metric][class] -> (seeds, 1 + B) arrays (the point, then the patient resamples), and notes.

    F1 and kappa are computed where ``thresholds`` (chosen on val) are given.
    """
    counts = patient_bootstrap(frame["patient"].to_numpy(), config.bootstrap, config.seed)
    metrics = METRICS if thresholds is not None else VAL_METRICS
    values: dict[str, dict[str, np.ndarray]] = {m: {} for m in metrics}
    notes = {}
    for k, name in enumerate(CLASSES):
        keep = ~np.isnan(y_all[:, k])
        y = y_all[keep, k]
        if not keep.any():
            notes[name] = f"no {split} image has a {name} label (the {split} data do not label it): left out"
            continue
        if np.isnan(y_val[:, k]).all():
            notes[name] = f"no val image has a {name} label (the training data do not label it): left out"
            continue
        if y.sum() == 0 or y.sum() == len(y):
            notes[name] = f"{split} has no {'positive' if y.sum() == 0 else 'negative'} {name} label: left out"
            continue
        per_seed = {m: [] for m in metrics}
        for i, seed in enumerate(scores):
            s = scores[seed][keep, k]
            blocks: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
            for w in _weight_blocks(counts, keep):
                roc, ap = auroc_ap(y, s, w)
                blocks["auroc"].append(roc)
                blocks["ap"].append(ap)
                if thresholds is not None:
                    f1, kappa = f1_kappa(y, s, thresholds[name][i], w)
                    blocks["f1"].append(f1)
                    blocks["kappa"].append(kappa)
            for m in metrics:
                per_seed[m].append(np.concatenate(blocks[m]))
        for m in metrics:
            values[m][name] = np.array(per_seed[m])
    return values, notes


#: bootstrap resamples scored at a time: the (resamples, images) arrays of one class stay small (100 rows of
#: 200,000 images: 160 MB each), and no number changes, as every resample is scored on its own
BLOCK = 100


def _weight_blocks(counts: np.ndarray, keep: np.ndarray):
    """The kept images' weights: the point estimate's (all ones), then the resamples', BLOCK rows at a time."""
    yield np.ones((1, int(keep.sum())))
    for start in range(0, len(counts), BLOCK):
        yield counts[start : start + BLOCK][:, keep].astype(float)


def _point_and_interval(key: str, samples: np.ndarray, confidence: float) -> dict:
    low, high = interval(samples[1:], confidence)
    return {key: samples[0], f"{key}_low": low, f"{key}_high": high}


def _macro(values: dict[str, dict[str, np.ndarray]], metrics: tuple[str, ...], confidence: float, n_seeds: int) -> dict:
    """Macro means over the classes (and ``auroc_5`` over the competition classes), with intervals and sd."""
    summary: dict = {}
    for m in metrics:
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
            summary.update(_point_and_interval(key, per_seed.mean(axis=0), confidence))
            if n_seeds > 1:
                summary[f"{key}_sd"] = float(per_seed[:, 0].std(ddof=1))
    return summary


def _scores(
    predictions: pd.DataFrame, seed: int, val: pd.DataFrame, test: pd.DataFrame
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
    return {
        k: (
            None
            if v is None or (isinstance(v, float) and np.isnan(v))
            else round(float(v), 5)
            if isinstance(v, (float, np.floating))
            else v
        )
        for k, v in summary.items()
    }


@dataclass
class Study:
    """Every cell's evaluation.

    Attributes:
        summary: ``{init: {pct: macro metrics and protocol}}`` (metrics/evaluate.json).
        per_class: every class of every cell, with ``init``, ``pct`` and ``protocol`` first.
        predictions: ``{"<init>-<pct>": the cell's predictions.csv}``.
        protocols: label percent -> the protocols its cells ran.
        notes: ``(cell, note)`` for the classes left out and thresholds defaulted.
    """

    summary: dict
    per_class: pd.DataFrame
    predictions: dict[str, pd.DataFrame]
    protocols: dict[int, set[str]]
    notes: list[tuple[str, str]]


def evaluate_cells(
    finetune: Path, inits: list[str], percents: list[int], val: pd.DataFrame, test: pd.DataFrame, config: EvaluateConfig
) -> Study:
    """Evaluate the cell ``finetune/<init>-<pct>/`` of every init and label percent (:func:`evaluate_cell`)."""
    summary: dict = {}
    tables, predictions, protocols, notes = [], {}, {}, []
    for init in inits:
        for pct in percents:
            cell = f"{init}-{pct}"
            folder = finetune / cell
            frame = read_predictions(folder)
            try:
                result, table = evaluate_cell(frame, val, test, config)
            except ValueError as error:
                raise DataError(f"{folder}: {error}; rerun finetune@{cell}") from None
            protocol = str(read_info(folder)["protocol"])
            summary.setdefault(init, {})[str(pct)] = {**result, "protocol": protocol}
            protocols.setdefault(pct, set()).add(protocol)
            tables.append(table.assign(init=init, pct=pct, protocol=protocol))
            predictions[cell] = frame
            notes += [(cell, note) for note in table.loc[table["note"] != "", "note"]]
    per_class = pd.concat(tables, ignore_index=True)
    first = ["init", "pct", "protocol"]
    per_class = per_class[[*first, *[c for c in per_class.columns if c not in first]]]
    return Study(summary, per_class, predictions, protocols, notes)
