"""Patient-level splits, uncertainty policies and nested label fractions.

Three rules make the split trustworthy:

* no patient appears in two of train/val/test (split files made by image leak
  patients; given such train and test tables, the shared patients are
  dropped from train, kept with a warning, or an error: ``split.on_patient_overlap``);
* the label fractions are nested: a row belongs to the f-subset iff its
  ``min_fraction <= f``, and ``min_fraction`` is drawn per patient;
* the uncertainty policy is an explicit, named choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrssl.data.schema import CLASSES, POSITIVE, UNCERTAIN, UNLABELLED
from cxrssl.errors import DataError
from cxrssl.params import check_list, require

POLICIES = ("zeros", "ones", "ignore")


def apply_policy(labels: np.ndarray, policy: str) -> np.ndarray:
    """Map raw CheXpert labels to training targets.

    Args:
        labels: (N, C) raw values 1.0 / 0.0 / -1.0 / NaN (blank), or UNLABELLED
            (a class the source dataset does not label).
        policy: "zeros" (U-Zeros: uncertain -> 0), "ones" (U-Ones: uncertain -> 1)
            or "ignore" (U-Ignore: uncertain -> NaN, masked out of loss and metrics).
            Blank ("not mentioned") is always negative; UNLABELLED is always masked.

    Returns:
        (N, C) float array of 1.0 / 0.0, and NaN where masked.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown uncertainty policy {policy!r}; expected one of {POLICIES}")
    out = np.where(np.isnan(labels), 0.0, labels)
    uncertain = labels == UNCERTAIN
    out[uncertain] = {"zeros": 0.0, "ones": 1.0, "ignore": np.nan}[policy]
    out[labels == UNLABELLED] = np.nan
    return out


def patient_overlap(first: pd.DataFrame, second: pd.DataFrame) -> set[str]:
    """Patients present in both frames (by the ``patient`` column)."""
    return set(first["patient"]).intersection(second["patient"])


def split_patients(patients: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Draw ``round(fraction * len(patients))`` distinct patients (at least one if fraction > 0)."""
    unique = np.unique(patients)
    count = int(round(fraction * len(unique)))
    if fraction > 0:
        count = max(count, 1)
    return rng.choice(unique, size=min(count, len(unique)), replace=False)


def assign_splits(
    frame: pd.DataFrame,
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
    carve_test: bool | None = None,
) -> pd.Series:
    """Assign each row to "train", "val" or "test" by patient.

    Rows from a test table (``origin == "test"``, CheXpert's valid.csv) are the
    test set, as in the literature; then ``test_fraction`` is not used. Without
    a test table, test patients are drawn from train. Val is always drawn from
    the remaining train patients.

    Args:
        frame: rows with ``patient`` and ``origin``.
        val_fraction: share of train patients that go to val.
        test_fraction: share of patients that go to test when there is no test table.
        rng: the only source of randomness.
        carve_test: draw test patients from train; by default, when no row
            comes from a test table.

    Returns:
        A Series of split names aligned with ``frame``.
    """
    split = pd.Series(np.where(frame["origin"] == "test", "test", "train"), index=frame.index)
    if carve_test is None:
        carve_test = not (split == "test").any()
    if carve_test:
        test = split_patients(frame["patient"].to_numpy(), test_fraction, rng)
        split[frame["patient"].isin(test)] = "test"
    train = frame.loc[split == "train", "patient"].to_numpy()
    val = split_patients(train, val_fraction, rng)
    split[frame["patient"].isin(val) & (split == "train")] = "val"
    return split


def min_fractions(frame: pd.DataFrame, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-row ``min_fraction``: the smallest label fraction whose subset holds the row.

    Patients are put in a random order; a patient's ``min_fraction`` is the
    share of rows up to and including that patient, so the f-subset
    (``min_fraction <= f``) holds at most a fraction f of the rows and subsets
    are nested. Before the random order, one patient with a positive label is
    moved to the front for each class that has positives (rarest class first,
    skipping classes already covered), so that small fractions hold at least
    one positive per class wherever the data allow.

    Args:
        frame: the training rows, with ``patient``.
        targets: (N, C) policy-applied labels (1/0/NaN) aligned with ``frame``.
        rng: the only source of randomness.

    Returns:
        (N,) float array in (0, 1]; the last patient's rows get exactly 1.0.
    """
    codes, patients = pd.factorize(frame["patient"], sort=True)
    n_patients = len(patients)
    positive = np.nan_to_num(targets, nan=0.0) == POSITIVE
    # (P, C) does patient p have a positive of class c
    patient_pos = np.zeros((n_patients, targets.shape[1]), dtype=bool)
    np.logical_or.at(patient_pos, codes, positive)

    order = rng.permutation(n_patients)
    front: list[int] = []
    covered = np.zeros(targets.shape[1], dtype=bool)
    for c in np.argsort(patient_pos.sum(axis=0), kind="stable"):
        if covered[c] or not patient_pos[:, c].any():
            continue
        candidates = order[patient_pos[order, c]]  # in random order
        chosen = int(candidates[0])
        front.append(chosen)
        covered |= patient_pos[chosen]
    rest = order[~np.isin(order, front)]  # keeps the random order
    ranked = np.concatenate([np.asarray(front, dtype=int), rest])

    rows_per_patient = np.bincount(codes, minlength=n_patients)
    cumulative = np.cumsum(rows_per_patient[ranked]) / len(frame)
    fraction_of_patient = np.empty(n_patients)
    fraction_of_patient[ranked] = cumulative
    fraction_of_patient[ranked[-1]] = 1.0  # exact, whatever the float rounding
    return fraction_of_patient[codes]


def class_counts(targets: np.ndarray) -> dict[str, dict[str, int]]:
    """Positives, negatives and masked labels per class."""
    return {
        name: {
            "positive": int(np.sum(targets[:, k] == 1.0)),
            "negative": int(np.sum(targets[:, k] == 0.0)),
            "masked": int(np.sum(np.isnan(targets[:, k]))),
        }
        for k, name in enumerate(CLASSES)
    }


def subset(train: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """The nested f-subset of a train split: rows with ``min_fraction <= f``."""
    return train[train["min_fraction"] <= fraction + 1e-12]


OVERLAP_ACTIONS = ("drop", "keep", "error")


@dataclass(frozen=True)
class SplitConfig:
    """params.yaml section ``split``.

    Attributes:
        seed: seeds the patient split and the label fractions.
        val_fraction: share of train patients held out for model selection.
        test_fraction: share of patients for test when the dataset has no test table.
        frontal_only: keep frontal views only.
        uncertainty: "zeros" (U-Zeros), "ones" (U-Ones) or "ignore" (U-Ignore, masked).
        on_patient_overlap: what to do when the given train and test tables
            share patients (a leak): "drop" them from train, "keep" them (with a
            warning) or stop with an "error".
    """

    seed: int
    val_fraction: float
    test_fraction: float
    frontal_only: bool
    uncertainty: str
    on_patient_overlap: str

    def validate(self) -> None:
        require(self.seed >= 0, "split.seed", self.seed, "a non-negative integer")
        require(0 < self.val_fraction < 1, "split.val_fraction", self.val_fraction, "a number in (0, 1)")
        require(0 < self.test_fraction < 1, "split.test_fraction", self.test_fraction, "a number in (0, 1)")
        require(self.uncertainty in POLICIES, "split.uncertainty", self.uncertainty, f"one of {', '.join(POLICIES)}")
        require(
            self.on_patient_overlap in OVERLAP_ACTIONS,
            "split.on_patient_overlap",
            self.on_patient_overlap,
            f"one of {', '.join(OVERLAP_ACTIONS)}",
        )


def check_percents(percents) -> list[int]:
    """Validate the ``label_percents`` list: integers in (0, 100], no repeats."""
    percents = check_list("label_percents", percents, int)
    require(len(percents) > 0, "label_percents", percents, "a non-empty list of integers in (0, 100]")
    for i, pct in enumerate(percents):
        require(0 < pct <= 100, f"label_percents[{i}]", pct, "an integer in (0, 100]")
    require(len(set(percents)) == len(percents), "label_percents", percents, "no repeated percent")
    return sorted(percents)


SPLITS = ("train", "val", "test")


def make_splits(index: pd.DataFrame, config: SplitConfig, percents: list[int]) -> tuple[dict[str, pd.DataFrame], dict]:
    """Split a dataset index by patient and apply the uncertainty policy.

    Args:
        index: one row per image with the CheXpert columns, ``patient``,
            ``study`` and ``origin`` ("train"/"test": the table it came from).
        config: the split settings.
        percents: the label percents the study trains at (for the report).

    Returns:
        ``{"train", "val", "test"}`` frames whose label columns hold the
        policy-applied targets (1.0 / 0.0 / blank where masked), ``train`` with
        ``min_fraction``; and a summary for the metrics file.

    Raises:
        DataError: a split left empty, or a patient overlap with
            ``on_patient_overlap: error``.
    """
    rng = np.random.default_rng(config.seed)
    frame = index
    summary: dict = {"uncertainty": config.uncertainty, "frontal_only": config.frontal_only}
    has_test_table = bool((frame["origin"] == "test").any())

    shared = patient_overlap(frame[frame["origin"] == "train"], frame[frame["origin"] == "test"])
    summary["patient_overlap"] = {"patients": len(shared), "action": config.on_patient_overlap}
    if shared:
        leaking = frame["patient"].isin(shared) & (frame["origin"] == "train")
        message = (
            f"{len(shared)} patients ({int(leaking.sum())} train images) appear in both the train "
            f"and the test table: a patient leak that inflates test metrics"
        )
        summary["patient_overlap"]["train_images"] = int(leaking.sum())
        if config.on_patient_overlap == "error":
            raise DataError(f"{message}. Set split.on_patient_overlap to drop or keep.")
        summary["patient_overlap"]["message"] = message
        if config.on_patient_overlap == "drop":
            frame = frame[~leaking]

    if config.frontal_only:
        frame = frame[frame["Frontal/Lateral"] == "Frontal"]
    split = assign_splits(frame, config.val_fraction, config.test_fraction, rng, carve_test=not has_test_table)
    targets = apply_policy(frame[list(CLASSES)].to_numpy(dtype=float), config.uncertainty)
    frame = frame.copy()
    frame[list(CLASSES)] = targets
    frame["_index"] = frame.index

    out = {}
    for name in SPLITS:
        part = frame[(split == name).to_numpy()]
        if part.empty:
            raise DataError(
                f"split {name!r} is empty after filtering (frontal_only={config.frontal_only}, "
                f"{len(index)} images before filtering); check data and split settings"
            )
        out[name] = part.reset_index(drop=True)
    train = out["train"]
    # front patients are chosen on raw positives, so every policy trains on the same subsets
    raw_positive = index.loc[train["_index"], list(CLASSES)].to_numpy(dtype=float) == POSITIVE
    train["min_fraction"] = min_fractions(train, raw_positive.astype(float), rng)
    out = {name: part.drop(columns="_index") for name, part in out.items()}
    train = out["train"]

    for name, part in out.items():
        summary[name] = {
            "n_images": len(part),
            "n_studies": int(part["study"].nunique()),
            "n_patients": int(part["patient"].nunique()),
            "classes": class_counts(part[list(CLASSES)].to_numpy()),
        }
    summary["label_fractions"] = {}
    for pct in percents:
        part = subset(train, pct / 100)
        if part.empty:
            raise DataError(
                f"label_percents: {pct}% of the {len(train)} train images selects no image "
                "(the smallest patient is a larger share); use a larger percent or more data"
            )
        positives = (part[list(CLASSES)].to_numpy() == 1.0).sum(axis=0)
        summary["label_fractions"][str(pct)] = {
            "n_images": len(part),
            "n_patients": int(part["patient"].nunique()),
            "classes_without_positive": [c for c, n in zip(CLASSES, positives) if n == 0],
        }
    return out, summary


def read_split(folder: Path, name: str, columns: list[str]) -> pd.DataFrame:
    """The split stage's ``<name>.csv`` in ``folder``, checked for ``columns``."""
    path = folder / f"{name}.csv"
    if not path.is_file():
        raise DataError(f"{path}: missing; run the split stage first")
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; rerun the split stage")
    return frame
