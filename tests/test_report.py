"""The report stage's headline: val first, then test with its interval and the gain over random."""

from cxrssl.report import headline


def cell(val, test):
    return {
        "val_auroc_macro": val,
        "auroc_macro": test,
        "auroc_macro_low": test - 0.01,
        "auroc_macro_high": test + 0.01,
    }


def test_the_headline_groups_figures_so_val_can_be_kept_alone():
    evaluation = {
        "random": {"1": cell(0.55, 0.54), "100": cell(0.85, 0.84)},
        "simclr": {"1": cell(0.63, 0.63), "100": cell(0.87, 0.85)},
    }
    top = headline(evaluation, ["random", "simclr"], [1, 100])
    assert list(top) == ["val", "test", "test_low", "test_high", "test_gain"]
    assert top["val"] == {"random": {"1": 0.55, "100": 0.85}, "simclr": {"1": 0.63, "100": 0.87}}
    assert top["test_low"]["simclr"]["100"] == 0.84
    assert top["test_gain"] == {"simclr": {"1": 0.09, "100": 0.01}}


def test_no_gain_without_random_and_null_stays_null():
    evaluation = {"moco": {"10": {**cell(0.6, 0.6), "auroc_macro": None}}}
    top = headline(evaluation, ["moco"], [10])
    assert "test_gain" not in top and top["test"]["moco"]["10"] is None
