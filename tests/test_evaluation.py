"""One cell's evaluation: macro means over defined classes, nulls with notes, seeds and intervals."""

import numpy as np
import pandas as pd
import pytest

from cxrssl.data.schema import CLASSES, COMPETITION_CLASSES
from cxrssl.evaluation import EvaluateConfig, evaluate_cell
from tests.conftest import settings

CONFIG = settings(EvaluateConfig, "evaluate", bootstrap=200, seed=0)


def split_table(n, seed, offset=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(CLASSES))) < 0.3).astype(float)
    frame = pd.DataFrame(labels, columns=list(CLASSES))
    frame.insert(0, "row", np.arange(n) + offset)
    frame.insert(1, "patient", [f"p{offset + i // 2}" for i in range(n)])
    return frame


def predictions_for(val, test, seeds=(0,), noise=0.0, rng=None):
    rng = rng or np.random.default_rng(0)
    parts = []
    for seed in seeds:
        for name, frame in (("val", val), ("test", test)):
            labels = frame[list(CLASSES)].fillna(0).to_numpy()
            scores = labels * 0.5 + 0.25 + noise * rng.standard_normal(labels.shape)
            part = pd.DataFrame(scores, columns=[f"score:{c}" for c in CLASSES])
            part.insert(0, "split", name)
            part.insert(1, "seed", seed)
            part.insert(2, "row", frame["row"].to_numpy())
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_perfect_scores_give_one_with_a_degenerate_interval():
    val, test = split_table(40, 0), split_table(60, 1, offset=100)
    summary, table = evaluate_cell(predictions_for(val, test), val, test, CONFIG)
    for key in ("auroc_macro", "auroc_5", "ap_macro", "f1_macro", "kappa_macro"):
        assert summary[key] == pytest.approx(1.0)
        assert summary[f"{key}_low"] == pytest.approx(1.0) and summary[f"{key}_high"] == pytest.approx(1.0)
    assert summary["classes"] == 14 and summary["seeds"] == 1 and summary["test_patients"] == 30
    assert list(table["class"]) == list(CLASSES)


def test_a_class_without_test_positives_is_null_with_a_note_and_left_out_of_the_mean():
    val, test = split_table(40, 0), split_table(60, 1, offset=100)
    test["Fracture"] = 0.0
    test["Edema"] = np.nan  # U-Ignore masked every Edema label
    predictions = predictions_for(val, test, noise=0.3)
    summary, table = evaluate_cell(predictions, val, test, CONFIG)
    assert summary["classes"] == 12
    fracture = table.set_index("class").loc["Fracture"]
    assert "no positive" in fracture["note"] and np.isnan(fracture["auroc"])
    defined = table.dropna(subset=["auroc"])
    assert summary["auroc_macro"] == pytest.approx(round(defined["auroc"].mean(), 5), abs=1e-5)
    five = defined[defined["class"].isin(COMPETITION_CLASSES)]
    assert len(five) == 4 and summary["auroc_5"] == pytest.approx(round(five["auroc"].mean(), 5), abs=1e-5)
    assert summary["auroc_macro_low"] < summary["auroc_macro"] < summary["auroc_macro_high"]


def test_several_seeds_report_their_mean_and_sd():
    val, test = split_table(40, 0), split_table(60, 1, offset=100)
    predictions = predictions_for(val, test, seeds=(0, 1, 2), noise=0.4)
    summary, _ = evaluate_cell(predictions, val, test, CONFIG)
    singles = [
        evaluate_cell(predictions[predictions["seed"] == s], val, test, CONFIG)[0]["auroc_macro"] for s in (0, 1, 2)
    ]
    assert summary["seeds"] == 3
    assert summary["auroc_macro"] == pytest.approx(np.mean(singles), abs=1e-4)
    assert summary["auroc_macro_sd"] == pytest.approx(np.std(singles, ddof=1), abs=1e-4)


def test_scoring_the_resamples_in_blocks_changes_no_number(monkeypatch):
    import cxrssl.evaluation as evaluation

    val, test = split_table(40, 0), split_table(60, 1, offset=100)
    predictions = predictions_for(val, test, seeds=(0, 1), noise=0.4)
    whole = evaluate_cell(predictions, val, test, CONFIG)  # 200 resamples: two blocks of 100
    monkeypatch.setattr(evaluation, "BLOCK", 7)
    blocked = evaluate_cell(predictions, val, test, CONFIG)
    assert blocked[0] == whole[0]
    pd.testing.assert_frame_equal(blocked[1], whole[1], check_exact=True)


def test_missing_predictions_are_an_error_naming_the_row():
    val, test = split_table(40, 0), split_table(60, 1, offset=100)
    predictions = predictions_for(val, test)
    predictions = predictions[~((predictions["split"] == "test") & (predictions["row"] == 105))]
    with pytest.raises(ValueError, match="no test prediction for store row 105"):
        evaluate_cell(predictions, val, test, CONFIG)
