"""The vectorised, weighted metrics against scikit-learn's definitions, and the patient bootstrap."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, cohen_kappa_score, f1_score, roc_auc_score

from cxrssl.metrics import (
    auroc,
    auroc_ap,
    average_precision,
    f1_kappa,
    f1_threshold,
    interval,
    patient_bootstrap,
    pr_points,
    roc_points,
)


def sample(n=60, seed=0, ties=True):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    scores = rng.random(n) + 0.6 * y
    if ties:
        scores = np.round(scores, 1)  # many ties
    return y, scores


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_weighted_metrics_equal_sklearn_on_the_resampled_multiset(seed, ties):
    y, scores = sample(seed=seed, ties=ties)
    rng = np.random.default_rng(seed + 10)
    weights = np.vstack([np.ones(len(y)), rng.integers(0, 3, size=(4, len(y)))]).astype(float)
    got_auc, got_ap = auroc(y, scores, weights), average_precision(y, scores, weights)
    both = auroc_ap(y, scores, weights)
    np.testing.assert_array_equal(both[0], got_auc)
    np.testing.assert_array_equal(both[1], got_ap)
    got_f1, got_kappa = f1_kappa(y, scores, 0.7, weights)
    for b, w in enumerate(weights):
        rows = np.repeat(np.arange(len(y)), w.astype(int))
        yy, ss = y[rows], scores[rows]
        assert got_auc[b] == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)
        assert got_ap[b] == pytest.approx(average_precision_score(yy, ss), abs=1e-12)
        assert got_f1[b] == pytest.approx(f1_score(yy, ss >= 0.7), abs=1e-12)
        assert got_kappa[b] == pytest.approx(cohen_kappa_score(yy, ss >= 0.7), abs=1e-12)


def test_undefined_metrics_are_nan_not_a_number_that_looks_fine():
    y = np.zeros(10)
    scores = np.linspace(0, 1, 10)
    weights = np.ones((1, 10))
    assert np.isnan(auroc(y, scores, weights)[0])
    assert np.isnan(average_precision(y, scores, weights)[0])
    assert all(np.isnan(v[0]) for v in f1_kappa(y, scores, 0.5, weights))
    assert np.isnan(f1_threshold(y, scores))


def test_f1_threshold_is_the_best_cut_on_the_given_labels():
    y, scores = sample(n=80, seed=3, ties=False)
    threshold = f1_threshold(y, scores)
    best = max(f1_score(y, scores >= t) for t in np.unique(scores))
    assert f1_score(y, scores >= threshold) == pytest.approx(best)


def test_patient_bootstrap_draws_patients_not_images():
    patients = np.array(["a", "a", "b", "c", "c", "c"])
    weights = patient_bootstrap(patients, 200, seed=0)
    assert weights.shape == (200, 6)
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 3] == weights[:, 5]).all()
    per_patient = weights[:, [0, 2, 3]]
    assert (per_patient.sum(axis=1) == 3).all()  # as many draws as patients
    assert (patient_bootstrap(patients, 200, seed=0) == weights).all()


def test_interval_ignores_nan_resamples():
    samples = np.r_[np.linspace(0, 1, 101), np.nan]
    low, high = interval(samples)
    assert low == pytest.approx(0.025) and high == pytest.approx(0.975)


def test_curves_on_a_perfect_and_a_useless_ranker():
    y = np.array([0, 0, 1, 1], dtype=float)
    grid = np.linspace(0, 1, 5)
    assert (roc_points(y, np.array([0.1, 0.2, 0.8, 0.9]), grid) == 1).all()
    assert (pr_points(y, np.array([0.1, 0.2, 0.8, 0.9]), grid) == 1).all()
    assert roc_points(y, np.array([0.9, 0.8, 0.2, 0.1]), grid)[0] == 0
