"""Evaluation metrics with patient-level bootstrap confidence intervals.

Every metric is computed for a batch of image weights at once: row b of the
(B, N) weight matrix says how often each image is in bootstrap resample b
(its patient's draw count), and row 0 of the point estimate is all ones.
With integer weights, each weighted metric equals the unweighted metric on
the resampled multiset of images, so scikit-learn's definitions hold (the
tests check them against scikit-learn):

* AUROC: Mann-Whitney statistic, ties counted one half (``roc_auc_score``);
* average precision: ``sum_k (R_k - R_{k-1}) P_k`` over descending
  thresholds, no interpolation (``average_precision_score``);
* F1 and Cohen's kappa of ``score >= threshold`` (``f1_score``,
  ``cohen_kappa_score``).

A metric that is undefined on a sample (a class without positives or
negatives) is NaN, never 0.5 or 0.
"""

from __future__ import annotations

import numpy as np


def patient_bootstrap(patients: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n, N) image weights of ``n`` resamples of the patients, drawn with replacement.

    The weights are counts, kept in the smallest unsigned integer type that
    holds them (2 bytes per image and resample for up to 65,535 patients, a
    quarter of float64's 8: 1,000 resamples of 200,000 images take 0.4 GB).
    """
    codes, inverse = np.unique(np.asarray(patients), return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(codes), size=(n, len(codes)))
    flat = (draws + np.arange(n)[:, None] * len(codes)).ravel()
    counts = np.bincount(flat, minlength=n * len(codes)).reshape(n, len(codes))
    return counts.astype(np.min_scalar_type(len(codes)))[:, inverse]


def _grouped(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative weight per distinct score, scores ascending: two (B, G) arrays."""
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    w = weights[:, order]
    yy = y[order]
    if len(starts) == len(s):  # no tied scores (the usual case): every group is one image
        return w * yy, w * (1 - yy)
    return np.add.reduceat(w * yy, starts, axis=1), np.add.reduceat(w * (1 - yy), starts, axis=1)


def auroc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray, grouped=None) -> np.ndarray:
    """(B,) weighted AUROC of binary labels ``y`` (N,) and ``scores`` (N,).

    ``grouped``: ``_grouped(y, scores, weights)`` if already computed (:func:`auroc_ap`).
    """
    pos, neg = grouped if grouped is not None else _grouped(y, scores, weights)
    below = np.cumsum(neg, axis=1) - neg
    total = pos.sum(1) * neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (pos * (below + 0.5 * neg)).sum(1) / total, np.nan)


def average_precision(y: np.ndarray, scores: np.ndarray, weights: np.ndarray, grouped=None) -> np.ndarray:
    """(B,) weighted average precision (scikit-learn's step-wise definition)."""
    pos, neg = grouped if grouped is not None else _grouped(y, scores, weights)
    pos, neg = pos[:, ::-1], neg[:, ::-1]  # thresholds descending
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    n_pos = pos.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        return np.where((n_pos > 0) & (neg.sum(1) > 0), (pos * precision).sum(1) / n_pos, np.nan)


def auroc_ap(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) AUROC and average precision, sorting and grouping the scores once for both."""
    grouped = _grouped(y, scores, weights)
    return auroc(y, scores, weights, grouped), average_precision(y, scores, weights, grouped)


def confusion(y: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted TP, FP, FN, TN, each (B,)."""
    y, predicted = y.astype(bool), predicted.astype(bool)
    return (
        weights @ (predicted & y),
        weights @ (predicted & ~y),
        weights @ (~predicted & y),
        weights @ (~predicted & ~y),
    )


def f1_kappa(y: np.ndarray, scores: np.ndarray, threshold: float, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) F1 and Cohen's kappa of ``scores >= threshold``; NaN where the sample lacks a class."""
    tp, fp, fn, tn = confusion(y, scores >= threshold, weights)
    n = tp + fp + fn + tn
    defined = (tp + fn > 0) & (fp + tn > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(defined, 2 * tp / (2 * tp + fp + fn), np.nan)
        observed = (tp + tn) / n
        expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
        kappa = np.where(defined & (expected < 1), (observed - expected) / (1 - expected), np.nan)
    return f1, kappa


def f1_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold that maximises F1 on (val) labels; NaN if there are no positives."""
    if y.sum() == 0:
        return float("nan")
    from sklearn.metrics import precision_recall_curve  # imported here: the training stages need none of it

    precision, recall, thresholds = precision_recall_curve(y, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap samples, NaN samples left out."""
    kept = samples[~np.isnan(samples)]
    if len(kept) == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    return float(np.percentile(kept, tail)), float(np.percentile(kept, 100 - tail))


def roc_points(y: np.ndarray, scores: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """TPR at the given FPR grid (the ROC curve's upper envelope, stepwise)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, scores)
    return np.array([tpr[fpr <= x].max() for x in grid])


def pr_points(y: np.ndarray, scores: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Interpolated precision (the best precision at recall >= r) at the given recall grid."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, scores)
    return np.array([precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in grid])
