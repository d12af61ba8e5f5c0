"""The embedded default dataset: generated chest radiographs in CheXpert's exact format.

``generate`` writes a tree that the CheXpert reader reads unchanged, into a
folder or, as the pipeline does, into a zip archive laid out like CheXpert's
own ``CheXpert-v1.0-small.zip`` (everything under ``CheXpert-v1.0-small/``)::

    <out>/train.csv  <out>/valid.csv  <out>/regions.csv
    <out>/train/patient00001/study1/view1_frontal.jpg
    <out>/valid/patient02001/study1/view1_frontal.jpg ...

Labels follow the real CheXpert table's statistics (shipped in
``chexpert_label_stats.json``, see :mod:`cxrssl.data.label_stats`): per-class
prevalence and uncertainty, co-occurrence, patients with several studies,
frontal and lateral views, AP and PA. As in CheXpert, ``valid.csv`` holds
consensus labels: 1.0 or 0.0 in every cell, no uncertainty, no blanks; an
uncertain finding there was drawn faintly and is labelled positive or, when it
was not drawn at all, negative. ``regions.csv`` gives the ground-truth box of
every drawn finding (normalised coordinates), for scoring Grad-CAM.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pandas as pd
from scipy import stats

from cxrssl.data.label_stats import NO_FINDING_EXCLUDES, load_stats
from cxrssl.data.schema import CLASSES, COLUMNS, NEGATIVE, POSITIVE, REGION_COLUMNS, UNCERTAIN
from cxrssl.parallel import process_pool
from cxrssl.params import require
from cxrssl.phantoms.patient import sample_patient
from cxrssl.phantoms.render import render
from cxrssl.progress import progress as progress_bar

DATASET_NAME = "CheXpert-v1.0-small"


@dataclass(frozen=True)
class PhantomConfig:
    """Size and difficulty of the phantom dataset (params.yaml section ``phantoms``).

    Attributes:
        n_patients: patients in train.csv (about 3.4 images each, as in CheXpert).
        n_valid_patients: patients in valid.csv (one study each, as in CheXpert).
        height, width: image size in pixels (CheXpert-v1.0-small is 320 wide).
        contrast: visibility of findings; 1.0 default, lower is harder.
        seed: everything follows from it.
        jpeg_quality: JPEG quality of the written images.
        workers: processes (0 = one per core).
    """

    n_patients: int
    n_valid_patients: int
    height: int
    width: int
    contrast: float
    seed: int
    jpeg_quality: int
    workers: int

    def validate(self) -> None:
        require(self.n_patients >= 1, "phantoms.n_patients", self.n_patients, "at least 1")
        require(self.n_valid_patients >= 0, "phantoms.n_valid_patients", self.n_valid_patients, ">= 0")
        for key in ("height", "width"):
            value = getattr(self, key)
            require(32 <= value <= 4096, f"phantoms.{key}", value, "32 to 4096 pixels")
        require(self.contrast > 0, "phantoms.contrast", self.contrast, "a positive number")
        require(1 <= self.jpeg_quality <= 100, "phantoms.jpeg_quality", self.jpeg_quality, "1 to 100")
        require(self.workers >= 0, "phantoms.workers", self.workers, "0 (all cores) or more")
        require(self.seed >= 0, "phantoms.seed", self.seed, "a non-negative integer")


# ---------------------------------------------------------------- labels


def _categorical(rng: np.random.Generator, histogram: dict[str, int], size: int) -> np.ndarray:
    keys = list(histogram)
    counts = np.array([histogram[k] for k in keys], dtype=float)
    return np.array(keys)[rng.choice(len(keys), size=size, p=counts / counts.sum())]


def sample_latents(rng: np.random.Generator, studies_per_patient: np.ndarray, stats_: dict) -> np.ndarray:
    """Correlated latent scores, one row per study, studies of a patient alike.

    Returns:
        (S, K) standard-normal latents for the K pathologies, correlated across
        classes by ``latent_correlation`` and across a patient's studies by
        ``patient_rho``.
    """
    corr = np.asarray(stats_["latent_correlation"])
    chol = np.linalg.cholesky(corr)
    rho = stats_["patient_rho"]
    n_patients, n_studies = len(studies_per_patient), int(studies_per_patient.sum())
    patient = rng.standard_normal((n_patients, len(corr))) @ chol.T
    noise = rng.standard_normal((n_studies, len(corr))) @ chol.T
    return np.sqrt(rho) * np.repeat(patient, studies_per_patient, axis=0) + np.sqrt(1 - rho) * noise


def latents_to_labels(latents: np.ndarray, u_blank: np.ndarray, stats_: dict) -> np.ndarray:
    """Threshold latents into raw CheXpert values (1.0, -1.0, 0.0, NaN) per pathology.

    The top ``p_positive`` of each latent's distribution is positive, the next
    ``p_uncertain`` uncertain; the rest is a mentioned negative or a blank in
    the real table's proportion (``u_blank`` uniform draws decide).
    """
    labels = np.full(latents.shape, np.nan)
    for k, name in enumerate(stats_["pathologies"]):
        spec = stats_["classes"][name]
        t_positive = stats.norm.isf(spec["p_positive"])
        t_present = stats.norm.isf(spec["p_positive"] + spec["p_uncertain"])
        z = latents[:, k]
        p_neg_given_absent = spec["p_negative"] / max(spec["p_negative"] + spec["p_blank"], 1e-12)
        labels[:, k] = np.where(u_blank[:, k] < p_neg_given_absent, NEGATIVE, np.nan)
        labels[z > t_present, k] = UNCERTAIN
        labels[z > t_positive, k] = POSITIVE
    return labels


def no_finding(labels: np.ndarray, pathologies: list[str], u: np.ndarray, p_given_none: float) -> np.ndarray:
    """CheXpert's "No Finding": positive (with the real table's rate) when no pathology is present."""
    columns = [pathologies.index(c) for c in NO_FINDING_EXCLUDES]
    present = np.isin(labels[:, columns], (POSITIVE, UNCERTAIN)).any(axis=1)
    return np.where(~present & (u < p_given_none), POSITIVE, np.nan)


def sample_table(
    rng: np.random.Generator, n_patients: int, first_patient: int, folder: str, consensus: bool, stats_: dict
) -> tuple[pd.DataFrame, list[dict]]:
    """Sample the rows of one CSV and what each image should show.

    Args:
        rng: the only source of randomness.
        n_patients: how many patients.
        first_patient: number of the first patient (patients are numbered across tables).
        folder: "train" or "valid".
        consensus: valid.csv style: one study per patient, labels 1.0/0.0 only.
        stats_: the label statistics.

    Returns:
        The CSV rows (CheXpert columns) and, per row, the findings to draw
        (class -> 1.0 clear or -1.0 faint), the patient index and the seeds.
    """
    pathologies = stats_["pathologies"]
    if consensus:
        per_patient = np.ones(n_patients, dtype=int)
    else:
        per_patient = _categorical(rng, stats_["studies_per_patient"], n_patients).astype(int)
    latents = sample_latents(rng, per_patient, stats_)
    n_studies = len(latents)
    labels = latents_to_labels(latents, rng.random(latents.shape), stats_)
    drawn = labels.copy()  # what the image shows: 1.0 clear, -1.0 faint, else nothing
    if consensus:
        faint_positive = (labels == UNCERTAIN) & (rng.random(labels.shape) < 0.5)
        drawn = np.where(labels == POSITIVE, POSITIVE, np.where(faint_positive, UNCERTAIN, np.nan))
        labels = np.where(np.isnan(drawn), NEGATIVE, POSITIVE)
        nf = np.where(no_finding(drawn, pathologies, np.zeros(n_studies), 1.0) == POSITIVE, POSITIVE, NEGATIVE)
    else:
        nf = no_finding(labels, pathologies, rng.random(n_studies), stats_["p_no_finding_given_none"])

    patient_of_study = np.repeat(np.arange(n_patients), per_patient)
    study_number = np.concatenate([np.arange(1, n + 1) for n in per_patient])
    sex = _categorical(rng, stats_["sex"], n_patients)
    age = _categorical(rng, stats_["age_histogram"], n_patients).astype(int)
    views = _categorical(rng, stats_["views_per_study"], n_studies)

    rows, draws = [], []
    for s in range(n_studies):
        p = patient_of_study[s]
        pid = first_patient + p
        n_frontal, n_lateral = (int(v) for v in views[s].split(","))
        kinds = ["frontal"] * n_frontal + ["lateral"] * n_lateral
        for v, kind in enumerate(kinds, start=1):
            projection = ""
            if kind == "frontal":
                projection = "AP" if rng.random() < stats_["p_ap_given_frontal"] else "PA"
            path = f"{DATASET_NAME}/{folder}/patient{pid:05d}/study{study_number[s]}/view{v}_{kind}.jpg"
            row = {
                "Path": path,
                "Sex": sex[p],
                "Age": min(90, age[p] + (study_number[s] - 1) // 2),
                "Frontal/Lateral": kind.capitalize(),
                "AP/PA": projection,
                "No Finding": nf[s],
            }
            row.update(zip(pathologies, labels[s]))
            rows.append(row)
            findings = {
                c: float(drawn[s, k]) for k, c in enumerate(pathologies) if drawn[s, k] in (POSITIVE, UNCERTAIN)
            }
            draws.append(
                {
                    "path": path,
                    "patient": int(pid),
                    "sex": sex[p],
                    "age": int(row["Age"]),
                    "view": projection or "lateral",
                    "findings": findings,
                    "seed": (int(pid), int(study_number[s]), v),
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS)), draws


# ---------------------------------------------------------------- images

_job_settings: dict = {}


def _init_worker(settings: dict) -> None:
    _job_settings.update(settings)
    cv2.setNumThreads(1)


def _render_one(draw: dict) -> tuple[str, bytes, list[dict]]:
    """Render and encode one image: (its CSV path, the JPEG, its regions as CSV rows)."""
    s = _job_settings
    patient_rng = np.random.default_rng([s["seed"], draw["patient"]])
    patient = sample_patient(patient_rng, draw["sex"], draw["age"])
    image_rng = np.random.default_rng([s["seed"], *draw["seed"]])
    image, regions = render(
        patient, draw["findings"], draw["view"], image_rng, s["height"], s["width"], contrast=s["contrast"]
    )
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, s["quality"]])
    if not ok:
        raise OSError(f"{draw['path']}: could not encode the image")
    return (
        draw["path"],
        jpeg.tobytes(),
        [
            {"Path": draw["path"], "label": r.label, "x0": r.box[0], "y0": r.box[1], "x1": r.box[2], "y1": r.box[3]}
            for r in regions
        ],
    )


class _FolderWriter:
    """Files under a folder, by their path inside the dataset."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def write(self, name: str, data: bytes) -> None:
        target = self.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


class _ZipWriter:
    """Members of a zip archive under ``CheXpert-v1.0-small/``, as in the real download. Stored, not
    deflated (JPEGs do not shrink), with a fixed timestamp so that the same draw gives the same bytes."""

    def __init__(self, handle):
        self.zip = zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED)

    def write(self, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(f"{DATASET_NAME}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        self.zip.writestr(info, data)

    def __enter__(self):
        return self

    def __exit__(self, kind, *rest) -> None:
        """Close the archive while its file is still open; after a failure the file is thrown away, so an
        error writing the member table then is not worth a second report."""
        try:
            self.zip.close()
        except (OSError, ValueError):
            if kind is None:
                raise


def generate(config: PhantomConfig, out, progress: bool = True) -> dict:
    """Write the whole phantom dataset.

    Args:
        config: what to draw.
        out: an existing, empty folder to write the tree into, or a binary file
            object (opened for writing, seekable) to write it into as a zip
            archive whose members sit under ``CheXpert-v1.0-small/``, like
            CheXpert's own ``CheXpert-v1.0-small.zip``.
        progress: show a progress bar.

    Returns:
        A summary (counts of patients, studies, images, positives per class).
    """
    writer = _FolderWriter(Path(out)) if isinstance(out, str | Path) else _ZipWriter(out)
    stats_ = load_stats()
    rng = np.random.default_rng(config.seed)
    train, train_draws = sample_table(rng, config.n_patients, 1, "train", False, stats_)
    valid, valid_draws = sample_table(rng, config.n_valid_patients, config.n_patients + 1, "valid", True, stats_)
    settings = {
        "seed": config.seed,
        "height": config.height,
        "width": config.width,
        "contrast": config.contrast,
        "quality": config.jpeg_quality,
    }
    draws = train_draws + valid_draws
    regions: list[dict] = []
    with writer, process_pool(config.workers, _init_worker, (settings,)) as pool:
        results = pool.imap(_render_one, draws, chunksize=16)
        for path, jpeg, rows in progress_bar(results, total=len(draws), desc="phantoms", enabled=progress):
            writer.write(str(PurePosixPath(path).relative_to(DATASET_NAME)), jpeg)
            regions.extend(rows)
        writer.write("train.csv", train.to_csv(index=False).encode())
        writer.write("valid.csv", valid.to_csv(index=False).encode())
        writer.write(
            "regions.csv",
            pd.DataFrame(regions, columns=list(REGION_COLUMNS)).to_csv(index=False, float_format="%.4f").encode(),
        )
    return {
        name: {
            "n_images": len(table),
            "n_patients": int(table["Path"].str.extract(r"(patient\d+)")[0].nunique()),
            "n_studies": int(table["Path"].str.extract(r"(patient\d+/study\d+)")[0].nunique()),
            "positive": {c: int((table[c] == POSITIVE).sum()) for c in CLASSES},
            "uncertain": {c: int((table[c] == UNCERTAIN).sum()) for c in CLASSES},
        }
        for name, table in (("train", train), ("valid", valid))
    }
