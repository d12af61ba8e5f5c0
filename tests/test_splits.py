import numpy as np
import pandas as pd
import pytest

from cxrssl.data.chexpert import Report, read_table
from cxrssl.data.schema import CLASSES
from cxrssl.data.splits import (
    SplitConfig,
    apply_policy,
    assign_splits,
    check_percents,
    make_splits,
    min_fractions,
    subset,
)
from cxrssl.errors import DataError, ParamError
from cxrssl.params import from_dict
from tests.conftest import params_section, sample_file, settings

NAN = np.nan


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("zeros", [1.0, 0.0, 0.0, 0.0]),
        ("ones", [1.0, 0.0, 1.0, 0.0]),
        ("ignore", [1.0, 0.0, NAN, 0.0]),
    ],
)
def test_policies(policy, expected):
    raw = np.array([[1.0, 0.0, -1.0, NAN]])
    np.testing.assert_array_equal(apply_policy(raw, policy), np.array([expected]))


def test_unknown_policy():
    with pytest.raises(ValueError, match="unknown uncertainty policy 'maybe'"):
        apply_policy(np.zeros((1, 1)), "maybe")


def synthetic_index(n_patients=300, seed=0, with_test=True):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for s in range(rng.integers(1, 4)):
            row = {
                "patient": f"patient{p:05d}",
                "study": f"patient{p:05d}/study{s + 1}",
                "Frontal/Lateral": "Frontal" if rng.random() < 0.85 else "Lateral",
                "origin": "test" if with_test and p >= n_patients - 30 else "train",
            }
            row.update({c: rng.choice([1.0, 0.0, -1.0, NAN], p=[0.1, 0.2, 0.1, 0.6]) for c in CLASSES})
            rows.append(row)
    return pd.DataFrame(rows)


def test_assign_splits_keeps_patients_whole_and_uses_the_test_table():
    frame = synthetic_index()
    split = assign_splits(frame, 0.2, 0.5, np.random.default_rng(0))
    per_patient = split.groupby(frame["patient"]).nunique()
    assert per_patient.max() == 1
    assert (split[frame["origin"] == "test"] == "test").all()
    assert (split[frame["origin"] == "train"] != "test").all()
    val_share = frame.loc[split == "val", "patient"].nunique() / frame.loc[split != "test", "patient"].nunique()
    assert val_share == pytest.approx(0.2, abs=0.01)


def test_assign_splits_carves_test_by_patient_without_a_test_table():
    frame = synthetic_index(with_test=False)
    split = assign_splits(frame, 0.1, 0.25, np.random.default_rng(1))
    assert split.groupby(frame["patient"]).nunique().max() == 1
    assert frame.loc[split == "test", "patient"].nunique() == 75


def test_min_fractions_are_nested_by_patient_and_cover_every_class():
    frame = synthetic_index(1000, with_test=False)
    targets = apply_policy(frame[list(CLASSES)].to_numpy(), "zeros")
    fractions = min_fractions(frame, targets, np.random.default_rng(0))
    assert fractions.max() == 1.0 and fractions.min() > 0
    assert frame.assign(f=fractions).groupby("patient")["f"].nunique().max() == 1
    for f in (0.01, 0.1, 0.5):
        share = np.mean(fractions <= f)
        assert share <= f + 1e-9 and share > f - 0.02
    # classes present in the whole set are present in the 1% subset
    small = targets[fractions <= 0.01]
    assert (small == 1.0).any(axis=0).all()


def test_min_fractions_depend_on_the_seed_only():
    frame = synthetic_index(200, with_test=False)
    targets = apply_policy(frame[list(CLASSES)].to_numpy(), "ones")
    a = min_fractions(frame, targets, np.random.default_rng(5))
    b = min_fractions(frame, targets, np.random.default_rng(5))
    c = min_fractions(frame, targets, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_make_splits_accounts_for_every_row():
    frame = synthetic_index()
    config = settings(SplitConfig, "split", frontal_only=False, uncertainty="ignore")
    splits, summary = make_splits(frame, config, [1, 10, 100])
    assert sum(len(s) for s in splits.values()) == len(frame)
    patients = [set(s["patient"]) for s in splits.values()]
    assert not (patients[0] & patients[1]) and not (patients[0] & patients[2]) and not (patients[1] & patients[2])
    assert np.isnan(splits["train"][list(CLASSES)].to_numpy()).any()  # uncertain masked
    assert not (splits["train"][list(CLASSES)].to_numpy() == -1).any()
    assert summary["label_fractions"]["100"]["n_images"] == len(splits["train"])
    assert len(subset(splits["train"], 1.0)) == len(splits["train"])


def test_frontal_only_and_an_empty_split():
    frame = synthetic_index()
    splits, _ = make_splits(frame, settings(SplitConfig, "split", frontal_only=True), [100])
    assert all((s["Frontal/Lateral"] == "Frontal").all() for s in splits.values())
    frame["Frontal/Lateral"] = np.where(frame["origin"] == "test", "Lateral", frame["Frontal/Lateral"])
    with pytest.raises(DataError, match="split 'test' is empty after filtering"):
        make_splits(frame, settings(SplitConfig, "split", frontal_only=True), [100])


def test_split_params_are_validated():
    with pytest.raises(ParamError, match=r"split\.uncertainty is 'U-Zeros'"):
        from_dict(SplitConfig, "split", {**params_section("split"), "uncertainty": "U-Zeros"})
    with pytest.raises(ParamError, match=r"split\.val_fraction is 1\.5"):
        from_dict(SplitConfig, "split", {**params_section("split"), "val_fraction": 1.5})
    with pytest.raises(ParamError, match=r"label_percents\[1\] is 0"):
        check_percents([1, 0])
    with pytest.raises(ParamError, match=r"label_percents\[0\] is 150"):
        check_percents([150])
    with pytest.raises(ParamError, match=r"label_percents\[0\] is 1\.5; expected an integer"):
        check_percents([1.5])
    with pytest.raises(ParamError, match=r"label_percents is 10; expected a list"):
        check_percents(10)


def image_level_split(seed: int = 0, test_share: float = 0.2) -> pd.DataFrame:
    """The real label table split by image, not by patient, as split files made that way are."""
    frame = read_table(sample_file("chexpert", "train_labels.csv.gz"), Report())
    test = np.random.default_rng(seed).random(len(frame)) < test_share
    return frame.assign(origin=np.where(test, "test", "train"))


def test_split_files_made_by_image_leak_patients_and_are_fixed():
    frame = image_level_split()
    leaked = set(frame.loc[frame["origin"] == "train", "patient"]) & set(
        frame.loc[frame["origin"] == "test", "patient"]
    )
    assert len(leaked) > 10_000  # most patients have several images: an image-level split leaks most of them
    with pytest.raises(DataError, match=f"{len(leaked)} patients .* appear in both the train and the test table"):
        make_splits(frame, settings(SplitConfig, "split", on_patient_overlap="error"), [100])
    dropped, summary = make_splits(
        frame, settings(SplitConfig, "split", on_patient_overlap="drop", frontal_only=False), [100]
    )
    assert summary["patient_overlap"]["patients"] == len(leaked)
    assert not set(dropped["train"]["patient"]) & set(dropped["test"]["patient"])
    assert len(dropped["test"]) == int((frame["origin"] == "test").sum())  # the test table is kept whole
    assert not leaked & (set(dropped["train"]["patient"]) | set(dropped["val"]["patient"]))  # dropped from train
    kept, _ = make_splits(frame, settings(SplitConfig, "split", on_patient_overlap="keep", frontal_only=False), [100])
    assert set(kept["train"]["patient"]) & set(kept["test"]["patient"])


def test_real_label_table_splits_by_patient():
    frame = read_table(sample_file("chexpert", "train_labels.csv.gz"), Report()).assign(origin="train")
    splits, summary = make_splits(frame, settings(SplitConfig, "split"), [1, 10, 100])
    assert summary["label_fractions"]["1"]["classes_without_positive"] == []
    groups = [set(s["patient"]) for s in splits.values()]
    assert sum(len(g) for g in groups) == len(set().union(*groups))
    assert sum(len(s) for s in splits.values()) == int((frame["Frontal/Lateral"] == "Frontal").sum())


def test_an_empty_label_fraction_is_an_error():
    frame = synthetic_index(60)
    with pytest.raises(DataError, match="label_percents: 1% of the .* train images selects no image"):
        make_splits(frame, settings(SplitConfig, "split"), [1, 100])


def test_fractions_are_the_same_images_under_every_policy():
    frame = synthetic_index(400, with_test=False)
    subsets = [
        set(subset(make_splits(frame, settings(SplitConfig, "split", uncertainty=p), [5])[0]["train"], 0.05)["patient"])
        for p in ("zeros", "ones", "ignore")
    ]
    assert subsets[0] == subsets[1] == subsets[2]
