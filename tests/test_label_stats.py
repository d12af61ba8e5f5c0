import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cxrssl.data.label_stats import PATHOLOGIES, derive, load_stats, nearest_correlation, tetrachoric
from cxrssl.data.schema import CLASSES, COLUMNS
from cxrssl.phantoms.dataset import latents_to_labels, no_finding, sample_latents, sample_table


@pytest.mark.parametrize("rho", [-0.5, 0.0, 0.3, 0.8])
def test_tetrachoric_recovers_a_known_correlation(rho):
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=400_000)
    a, b = z[:, 0] > stats.norm.isf(0.2), z[:, 1] > stats.norm.isf(0.35)
    assert tetrachoric(a.mean(), b.mean(), (a & b).mean()) == pytest.approx(rho, abs=0.02)


def test_nearest_correlation_is_a_valid_correlation():
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    fixed = nearest_correlation(bad)
    np.testing.assert_allclose(np.diag(fixed), 1.0)
    assert np.linalg.eigvalsh(fixed).min() > 0


def test_shipped_stats_describe_the_real_table():
    s = load_stats()
    assert s["n_images"] == 223_414 and s["pathologies"] == list(PATHOLOGIES)
    assert s["classes"]["Pleural Effusion"]["p_positive"] == pytest.approx(0.39, abs=0.02)
    np.linalg.cholesky(np.asarray(s["latent_correlation"]))  # positive definite


def test_sampled_labels_reproduce_prevalence_uncertainty_and_cooccurrence():
    s = load_stats()
    rng = np.random.default_rng(0)
    per_patient = np.full(20_000, 3)
    latents = sample_latents(rng, per_patient, s)
    labels = latents_to_labels(latents, rng.random(latents.shape), s)
    for k, name in enumerate(PATHOLOGIES):
        spec = s["classes"][name]
        assert np.mean(labels[:, k] == 1.0) == pytest.approx(spec["p_positive"], abs=0.01)
        assert np.mean(labels[:, k] == -1.0) == pytest.approx(spec["p_uncertain"], abs=0.01)
        assert np.mean(labels[:, k] == 0.0) == pytest.approx(spec["p_negative"], abs=0.01)
    present = np.isin(labels, (1.0, -1.0))
    i, j = PATHOLOGIES.index("Edema"), PATHOLOGIES.index("Pleural Effusion")
    rho = tetrachoric(present[:, i].mean(), present[:, j].mean(), (present[:, i] & present[:, j]).mean())
    assert rho == pytest.approx(s["latent_correlation"][i][j], abs=0.05)
    # studies of one patient resemble each other
    same = np.corrcoef(latents[0::3, i], latents[1::3, i])[0, 1]
    assert same == pytest.approx(s["patient_rho"], abs=0.05)


def test_no_finding_only_without_pathology():
    pathologies = list(PATHOLOGIES)
    labels = np.full((3, len(pathologies)), np.nan)
    labels[1, pathologies.index("Edema")] = -1.0
    labels[2, pathologies.index("Support Devices")] = 1.0
    out = no_finding(labels, pathologies, np.zeros(3), 1.0)
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == 1.0


def test_sample_table_formats_like_chexpert():
    s = load_stats()
    train, draws = sample_table(np.random.default_rng(0), 200, 1, "train", False, s)
    assert list(train.columns) == list(COLUMNS) and len(train) == len(draws)
    pattern = r"CheXpert-v1.0-small/train/patient\d{5}/study\d+/view\d_(frontal|lateral)\.jpg"
    assert train["Path"].str.match(pattern).all()
    assert (train.groupby(train["Path"].str.extract(r"(patient\d+)")[0]).size() > 1).any()
    assert set(train["Frontal/Lateral"]) == {"Frontal", "Lateral"}
    assert (train[list(CLASSES)] == -1.0).any().any()
    valid, _ = sample_table(np.random.default_rng(1), 100, 201, "valid", True, s)
    values = valid[list(CLASSES)].to_numpy()
    assert set(np.unique(values)) <= {0.0, 1.0}  # consensus labels: no blanks, no uncertainty


def test_derive_on_a_small_table():
    rows = []
    for p in range(1, 41):
        for study in (1, 2):
            row = {c: np.nan for c in CLASSES}
            row.update(
                {
                    "Path": f"X/train/patient{p:05d}/study{study}/view1_frontal.jpg",
                    "Sex": "Male",
                    "Age": 50,
                    "Frontal/Lateral": "Frontal",
                    "AP/PA": "AP",
                }
            )
            row["Edema"] = 1.0 if p % 2 else 0.0
            row["Pleural Effusion"] = 1.0 if p % 4 == 1 else -1.0 if p % 4 == 2 else np.nan
            row["No Finding"] = 1.0 if p % 4 == 0 else np.nan
            rows.append(row)
    derived = derive(pd.DataFrame(rows))
    assert derived["n_patients"] == 40 and derived["n_studies"] == 80
    assert derived["classes"]["Edema"]["p_positive"] == 0.5
    assert derived["classes"]["Pleural Effusion"]["p_uncertain"] == 0.25
    assert derived["studies_per_patient"] == {"2": 40}
