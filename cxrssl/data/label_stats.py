"""Label statistics of the real CheXpert table, which the phantom generator reproduces.

The statistics are derived once from CheXpert's ``train.csv`` and shipped as
``chexpert_label_stats.json`` next to this file, so that the project never needs
the real table at run time. To derive them again::

    python -m cxrssl.data.label_stats path/to/train.csv[.gz] cxrssl/data/chexpert_label_stats.json

The label model (see :func:`cxrssl.phantoms.dataset.sample_table`) is a
Gaussian copula: each pathology k has a latent ``z_k ~ N(0, 1)``, the latents of
one study are correlated with the matrix ``R`` (tetrachoric correlations of
"mentioned as present", i.e. positive or uncertain, fitted pair by pair), and a
study's latent is ``sqrt(rho) * patient + sqrt(1 - rho) * noise`` so that the
studies of one patient resemble each other as in the real data. Thresholds on
``z_k`` give positive (top ``p_positive``), uncertain (next ``p_uncertain``),
and otherwise a mentioned negative (0.0) or a blank.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from cxrssl.data.schema import CLASSES, NEGATIVE, POSITIVE, UNCERTAIN

#: Classes with a latent variable; "No Finding" is derived from the others.
PATHOLOGIES: tuple[str, ...] = tuple(c for c in CLASSES if c != "No Finding")

#: Pathologies whose presence rules out "No Finding" (CheXpert's labeler ignores devices).
NO_FINDING_EXCLUDES: tuple[str, ...] = tuple(c for c in PATHOLOGIES if c != "Support Devices")

STATS_FILE = Path(__file__).with_name("chexpert_label_stats.json")

_PATH_PATTERN = r"patient(?P<patient>\d+)/study(?P<study>\d+)/view(?P<view>\d+)_"


def _upper_orthant(t1: float, t2: float, rho: float) -> float:
    """P(z1 > t1, z2 > t2) for standard bivariate normal with correlation rho."""
    cov = [[1.0, rho], [rho, 1.0]]
    return float(stats.multivariate_normal(mean=[0.0, 0.0], cov=cov).cdf([-t1, -t2]))


def tetrachoric(p1: float, p2: float, p12: float) -> float:
    """Latent correlation of two Gaussian-thresholded binary variables.

    Args:
        p1, p2: marginal probabilities that each variable is 1.
        p12: probability that both are 1.

    Returns:
        rho such that thresholding a standard bivariate normal with correlation
        rho at the quantiles of p1 and p2 reproduces p12 (clipped to ±0.995).
    """
    t1, t2 = stats.norm.isf(p1), stats.norm.isf(p2)
    lo, hi = -0.995, 0.995
    f = lambda rho: _upper_orthant(t1, t2, rho) - p12  # noqa: E731
    if f(lo) >= 0:
        return lo
    if f(hi) <= 0:
        return hi
    return float(optimize.brentq(f, lo, hi, xtol=1e-6))


def nearest_correlation(matrix: np.ndarray, floor: float = 1e-4) -> np.ndarray:
    """Clip eigenvalues to ``floor`` and rescale to a unit diagonal (a valid correlation)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    fixed = vectors @ np.diag(np.clip(values, floor, None)) @ vectors.T
    scale = 1.0 / np.sqrt(np.diag(fixed))
    return fixed * scale[:, None] * scale[None, :]


def derive(table: pd.DataFrame) -> dict:
    """Derive the label and acquisition statistics from a CheXpert label table.

    Args:
        table: CheXpert's train.csv as read by pandas (Path, Sex, Age,
            Frontal/Lateral, AP/PA and the 14 label columns).

    Returns:
        A JSON-serialisable dict (see the module docstring for the model).
    """
    ids = table["Path"].str.extract(_PATH_PATTERN)
    table = table.assign(patient=ids["patient"], study=ids["patient"] + "/" + ids["study"])
    studies = table.drop_duplicates("study")  # labels are per study in CheXpert

    labels = studies[list(PATHOLOGIES)]
    present = labels.isin([POSITIVE, UNCERTAIN]).to_numpy()
    p_present = present.mean(axis=0)
    classes = {}
    for name in PATHOLOGIES:
        column = labels[name]
        classes[name] = {
            "p_positive": float((column == POSITIVE).mean()),
            "p_uncertain": float((column == UNCERTAIN).mean()),
            "p_negative": float((column == NEGATIVE).mean()),
            "p_blank": float(column.isna().mean()),
        }

    n = len(PATHOLOGIES)
    corr = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            p_both = float((present[:, i] & present[:, j]).mean())
            corr[i, j] = corr[j, i] = tetrachoric(p_present[i], p_present[j], p_both)
    corr = nearest_correlation(corr)

    # Within-patient resemblance: the same class in consecutive studies of a patient.
    ordered = studies.sort_values(["patient", "study"])
    same_patient = ordered["patient"].to_numpy()[1:] == ordered["patient"].to_numpy()[:-1]
    seq = ordered[list(PATHOLOGIES)].isin([POSITIVE, UNCERTAIN]).to_numpy()
    first, second = seq[:-1][same_patient], seq[1:][same_patient]
    rhos, weights = [], []
    for k in range(n):
        p1, p2 = first[:, k].mean(), second[:, k].mean()
        p12 = (first[:, k] & second[:, k]).mean()
        rhos.append(tetrachoric(p1, p2, p12))
        weights.append(min(p1, 1 - p1))
    patient_rho = float(np.clip(np.average(rhos, weights=weights), 0.0, 0.95))

    none_present = ~labels[list(NO_FINDING_EXCLUDES)].isin([POSITIVE, UNCERTAIN]).any(axis=1)
    p_no_finding_given_none = float((studies.loc[none_present, "No Finding"] == POSITIVE).mean())

    views = table.groupby("study")["Frontal/Lateral"].agg(
        lambda v: f"{(v == 'Frontal').sum()},{(v == 'Lateral').sum()}"
    )
    frontal = table[table["Frontal/Lateral"] == "Frontal"]
    per_patient = table.groupby("patient")["study"].nunique()
    first_age = table.groupby("patient")["Age"].min()
    sex = table.drop_duplicates("patient")["Sex"].value_counts(normalize=True)

    return {
        "source": "CheXpert-v1.0-small train.csv",
        "n_images": int(len(table)),
        "n_studies": int(len(studies)),
        "n_patients": int(table["patient"].nunique()),
        "pathologies": list(PATHOLOGIES),
        "classes": classes,
        "latent_correlation": np.round(corr, 4).tolist(),
        "patient_rho": round(patient_rho, 4),
        "p_no_finding_given_none": round(p_no_finding_given_none, 4),
        "views_per_study": {k: int(v) for k, v in views.value_counts().items()},
        "p_ap_given_frontal": float((frontal["AP/PA"] == "AP").mean() / frontal["AP/PA"].isin(["AP", "PA"]).mean()),
        "studies_per_patient": {str(k): int(v) for k, v in per_patient.value_counts().sort_index().items()},
        "sex": {k: round(float(v), 5) for k, v in sex.items()},
        "age_histogram": {str(k): int(v) for k, v in first_age.value_counts().sort_index().items()},
    }


def load_stats(path: Path = STATS_FILE) -> dict:
    """Read the shipped statistics."""
    with open(path) as handle:
        return json.load(handle)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=Path, help="CheXpert train.csv (may be .gz)")
    parser.add_argument("out", type=Path, help="where to write the JSON statistics")
    args = parser.parse_args(argv)
    result = derive(pd.read_csv(args.table))
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
