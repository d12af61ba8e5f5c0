"""Reading NIH ChestX-ray14 (Wang et al., CVPR 2017) into the CheXpert label space (``data.source: nih``).

NIH's table (``Data_Entry_2017_v2020.csv`` or the older ``Data_Entry_2017.csv``)
has one row per image: ``Image Index, Finding Labels, Follow-up #, Patient ID,
Patient Age, Patient Gender, View Position, ...``, with ``Finding Labels`` such
as ``Atelectasis|Effusion`` or ``No Finding``. Its labels map to CheXpert's
where the two coincide (:data:`NIH_TO_CHEXPERT`); the CheXpert classes NIH does
not label (Enlarged Cardiomediastinum, Lung Opacity, Pleural Other, Fracture,
Support Devices) are stored as :data:`~cxrssl.data.schema.UNLABELLED`, which
every uncertainty policy masks: they carry no loss and are left out of the
metrics, instead of counting as negatives. NIH's other findings (Infiltration,
Emphysema, Fibrosis, Pleural_Thickening, Hernia) have no CheXpert class and are
dropped; an image with only those is neither "No Finding" nor positive for
anything mapped.

The images are PNGs (1024 x 1024 in the release, grayscale or RGBA) in
``<root>/images/`` or, as the release's twelve archives unpack,
``<root>/images_NNN/images/``. The test set is NIH's own patient-wise list
(``test_list.txt``, one image name per line), or, with ``data.test_csv: null``,
carved out by patient like any other dataset.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cxrssl.data import archive
from cxrssl.data.chexpert import Problem, Report, apply_checks, read_csv_rows
from cxrssl.data.schema import CLASSES, COLUMNS, NEGATIVE, POSITIVE, UNLABELLED
from cxrssl.errors import DataError

#: NIH finding -> CheXpert class; "No Finding" is "No Finding" in both.
NIH_TO_CHEXPERT: dict[str, str] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Effusion": "Pleural Effusion",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Mass": "Lung Lesion",
    "Nodule": "Lung Lesion",
    "No Finding": "No Finding",
}
#: NIH's findings without a CheXpert class.
NIH_UNMAPPED: tuple[str, ...] = ("Infiltration", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia")
#: The CheXpert classes NIH labels.
NIH_CLASSES: tuple[str, ...] = tuple(c for c in CLASSES if c in set(NIH_TO_CHEXPERT.values()))
NIH_COLUMNS: tuple[str, ...] = (
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
)
SEX = {"M": "Male", "F": "Female"}
_AGE = re.compile(r"^\s*(\d+)\s*([YMD]?)\s*$")  # v2020: "58"; 2017: "058Y", "011M", "020D"


def _age(text: str) -> float:
    """Age in years; NaN where NIH's value is blank, unreadable or impossible (the release has ages over 150)."""
    match = _AGE.match(text)
    if not match:
        return float("nan")
    value = int(match.group(1)) / {"": 1, "Y": 1, "M": 12, "D": 365}[match.group(2)]
    return float(value) if value <= 120 else float("nan")


def map_labels(findings: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """NIH ``Finding Labels`` -> (N, 14) CheXpert raw labels, and a mask of rows with an unknown finding.

    Mapped classes are 1.0 when named and 0.0 otherwise; the classes NIH does
    not label are UNLABELLED.
    """
    labels = np.full((len(findings), len(CLASSES)), UNLABELLED)
    for name in NIH_CLASSES:
        labels[:, CLASSES.index(name)] = NEGATIVE
    unknown = np.zeros(len(findings), dtype=bool)
    known = set(NIH_TO_CHEXPERT) | set(NIH_UNMAPPED)
    for i, text in enumerate(findings):
        names = [n.strip() for n in text.split("|")]
        if not all(names) or not set(names) <= known or ("No Finding" in names and len(names) > 1):
            unknown[i] = True
            continue
        for n in names:
            if n in NIH_TO_CHEXPERT:
                labels[i, CLASSES.index(NIH_TO_CHEXPERT[n])] = POSITIVE
    return labels, unknown


def read_table(path: Path, report: Report) -> pd.DataFrame:
    """Read and validate NIH's ``Data_Entry_2017*.csv`` into the CheXpert-format frame the pipeline uses.

    Returns:
        The valid rows with the CheXpert columns (``Path`` = the image name,
        ``Frontal/Lateral`` = Frontal, ``AP/PA`` = NIH's View Position) plus
        ``patient`` (``nih00000100``), ``study`` (``nih00000100/followup0``)
        and ``line``.
    """
    frame = read_csv_rows(path, report)
    missing = [c for c in NIH_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; an NIH "
            f"ChestX-ray14 table (Data_Entry_2017_v2020.csv) has the columns {', '.join(NIH_COLUMNS)}"
        )
    labels, bad_label = map_labels(frame["Finding Labels"])
    name = frame["Image Index"].str.strip()
    bad_name = ~name.str.fullmatch(r"[\w.-]+\.png", case=False).to_numpy()
    patient = pd.to_numeric(frame["Patient ID"], errors="coerce")
    followup = pd.to_numeric(frame["Follow-up #"], errors="coerce")
    bad_ids = (patient.isna() | followup.isna()).to_numpy()
    view = frame["View Position"].str.strip()
    bad_view = ~view.isin(("PA", "AP")).to_numpy()
    duplicate = name.duplicated().to_numpy()
    checks = [
        (bad_name, lambda r: f"Image Index {r['Image Index']!r} is not an image file name like '00000001_000.png'"),
        (
            bad_label,
            lambda r: f"Finding Labels {r['Finding Labels']!r}: expected '|'-separated NIH findings "
            f"({', '.join(sorted(set(NIH_TO_CHEXPERT) | set(NIH_UNMAPPED)))}) or 'No Finding' "
            "alone",
        ),
        (bad_ids, lambda r: f"Patient ID {r['Patient ID']!r} / Follow-up # {r['Follow-up #']!r}: expected integers"),
        (bad_view, lambda r: f"View Position is {r['View Position']!r}; expected PA or AP"),
        (duplicate, lambda r: f"Image Index {r['Image Index']!r} appears more than once"),
    ]
    bad_any = apply_checks(path, frame, checks, report)

    out = pd.DataFrame(
        {
            "Path": name,
            "Sex": frame["Patient Gender"].str.strip().map(SEX).fillna("Unknown"),
            "Age": [_age(a) for a in frame["Patient Age"]],
            "Frontal/Lateral": "Frontal",
            "AP/PA": view,
        }
    )
    out[list(CLASSES)] = labels
    ids = patient.fillna(-1).astype(int)
    out["patient"] = [f"nih{p:08d}" for p in ids]
    out["study"] = [f"{p}/followup{int(f)}" for p, f in zip(out["patient"], followup.fillna(-1))]
    out["line"] = frame["line"].to_numpy()
    return out.loc[~bad_any, [*COLUMNS, "patient", "study", "line"]].reset_index(drop=True)


def find_images(root: Path) -> dict[str, Path]:
    """Image name -> file, over ``<root>/images/`` and ``<root>/images_*/images/`` (the release's archives)."""
    folders = [root / "images", *sorted(root.glob("images_*/images"))]
    found: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            with os.scandir(folder) as entries:
                for entry in entries:
                    found.setdefault(entry.name, Path(entry.path))
    return found


def read_test_list(path: Path, max_bytes: int | None = None) -> set[str]:
    """NIH's ``test_list.txt``: one image name per line."""
    try:
        with archive.open_binary(path, max_bytes) as handle:
            names = {line.strip() for line in handle.read().decode().splitlines() if line.strip()}
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"data.test_csv: {path}: not a readable list of image names ({error})") from None
    if not names:
        raise DataError(f"data.test_csv: {path}: empty; expected NIH's test_list.txt (one image name per line)")
    return names


def read_dataset(root: Path, table: str, test_list: str | None, report: Report) -> pd.DataFrame:
    """Read an NIH ChestX-ray14 folder into the frame :func:`cxrssl.data.chexpert.read_dataset` returns.

    Args:
        root: the NIH folder (the table and ``images/``).
        table: ``Data_Entry_2017_v2020.csv`` or ``Data_Entry_2017.csv``, relative to ``root`` or absolute.
        test_list: NIH's ``test_list.txt`` (relative to ``root`` or absolute), or None to carve the test
            set out by patient.
        report: collects skipped rows, or raises on the first problem.
    """
    if not root.is_dir():
        raise DataError(f"data.root: {root} is not a folder (expected an NIH ChestX-ray14 folder)")
    path = root / table
    if not path.is_file():
        found = sorted(p.name for p in root.glob("Data_Entry_2017*.csv"))
        hint = f"; the folder has {', '.join(found)}" if found else ""
        raise DataError(f"data.train_csv: {path}: no such file (NIH's table is Data_Entry_2017_v2020.csv{hint})")
    frame = read_table(path, report)
    if frame.empty:
        raise DataError(f"{path}: no valid rows ({len(report.problems)} skipped); a table needs at least one image")
    frame["table"] = str(path)
    frame["origin"] = "train"
    if test_list:
        names = read_test_list(root / test_list, report.max_bytes)
        frame.loc[frame["Path"].isin(names), "origin"] = "test"
        if not (frame["origin"] == "test").any():
            raise DataError(f"data.test_csv: none of the {len(names)} images in {root / test_list} is in {path}")
    images = find_images(root)
    missing = ~frame["Path"].isin(images.keys()).to_numpy()
    if missing.any():
        if not images:
            raise DataError(f"{root}: no images/ folder (or images_NNN/images/) with NIH's PNG files")
        report.add(
            [
                Problem(str(path), int(row["line"]), f"image {row['Path']!r} is not in {root}/images*/")
                for _, row in frame[missing].iterrows()
            ]
        )
        frame = frame[~missing].reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{path}: no valid rows ({len(report.problems)} skipped)")
    frame["file"] = [str(images[name]) for name in frame["Path"]]
    return frame
