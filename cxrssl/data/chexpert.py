"""Reading and validating CheXpert-format label tables.

The same reader serves the real CheXpert (``CheXpert-v1.0`` or
``CheXpert-v1.0-small``), the phantom dataset (written in the same format) and
user-provided split files (``train_split.csv``/``test_split.csv``). Every
problem is reported with the file and the 1-based line number of the CSV
(the header is line 1), so that a user can open the file at that line.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cxrssl.data import archive
from cxrssl.data.schema import (
    CLASSES,
    COLUMNS,
    LABEL_VALUES,
    PROJECTION_VALUES,
    SEX_VALUES,
    VIEW_VALUES,
)
from cxrssl.errors import DataError

PATH_PATTERN = r"(?P<patient>patient\d+)/(?P<study>study\d+)/view\d+_(?:frontal|lateral)\.\w+$"


@dataclass
class Problem:
    """One bad row or image: which file, which line, what is wrong."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}, line {self.line}"
        return f"{where}: {self.reason}"


@dataclass
class Report:
    """Problems found while reading; raised at once unless the user opted to skip.

    ``max_bytes`` bounds every table read (``preprocess.max_file_bytes``).
    """

    skip: bool = False
    problems: list[Problem] = field(default_factory=list)
    max_bytes: int | None = None

    def add(self, problems: list[Problem]) -> None:
        """Record problems; raise on the first one unless skipping is on."""
        if problems and not self.skip:
            more = f" (and {len(problems) - 1} more problem(s) of this kind)" if len(problems) > 1 else ""
            raise DataError(f"{problems[0]}{more}. Set data.skip_invalid: true to skip such rows.")
        self.problems.extend(problems)

    def as_dict(self, limit: int = 50) -> dict:
        """Counts and the first ``limit`` problems, for a metrics/report file."""
        return {"n_skipped": len(self.problems), "examples": [str(p) for p in self.problems[:limit]]}


def read_csv_rows(path: Path, report: Report) -> pd.DataFrame:
    """All cells as strings, with each row's line in the file.

    Parsed with the csv module rather than pandas so that line numbers stay
    true across blank lines and quoted line breaks, and so that a short row is
    refused instead of being padded with blanks (which would read as
    negatives). A row with the wrong number of fields is a problem of that
    line (skipped with ``data.skip_invalid``); a duplicated column name, a
    file that is not UTF-8 (named by line) or has no header is an error.
    """
    if not archive.exists(path):
        raise DataError(f"{path}: no such file")
    try:
        with archive.open_binary(path, report.max_bytes) as raw:
            data = raw.read()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from None
    if report.max_bytes is not None and len(data) > report.max_bytes:
        raise DataError(
            f"{path}: {len(data):,} bytes once decompressed, more than the {report.max_bytes:,} "
            "allowed (preprocess.max_file_bytes)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[error.start]:02x}); save the table as UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise DataError(f"{path}: empty file; expected a CSV table with a header line")
        names = [name.strip() for name in header]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise DataError(f"{path}, line 1: the column {repeated[0]!r} appears more than once in the header")
        rows, lines, problems = [], [], []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            if len(row) != len(header):
                problems.append(
                    Problem(str(path), reader.line_num, f"{len(row)} fields where the header has {len(header)}")
                )
                continue
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: not a readable CSV row ({error})") from None
    report.add(problems)
    frame = pd.DataFrame(rows, columns=names, dtype=str)
    frame["line"] = lines
    return frame


def _check_columns(path: Path, frame: pd.DataFrame) -> None:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"a CheXpert table has the columns {', '.join(COLUMNS)}"
        )


def _problems(path: Path, frame: pd.DataFrame, bad: np.ndarray, reason) -> list[Problem]:
    """Problems for the rows flagged in ``bad``; ``reason(row)`` explains one row."""
    return [Problem(str(path), int(frame["line"].iloc[i]), reason(frame.iloc[i])) for i in np.flatnonzero(bad)]


def apply_checks(path: Path, frame: pd.DataFrame, checks: list, report: Report) -> np.ndarray:
    """Report each row under the first of ``checks`` ((bad mask, reason(row)) pairs) it fails; the rows failing any."""
    bad_any = np.zeros(len(frame), dtype=bool)
    for bad, reason in checks:
        report.add(_problems(path, frame, bad & ~bad_any, reason))
        bad_any |= bad
    return bad_any


def parse_labels(path: Path, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Label columns as floats (NaN = blank) and a mask of rows with an unknown value."""
    raw = frame[list(CLASSES)].apply(lambda col: col.str.strip())
    values = raw.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    blank = (raw == "").to_numpy()
    known = np.isin(values, LABEL_VALUES) | blank
    return values, ~known.all(axis=1)


def read_table(path: Path, report: Report) -> pd.DataFrame:
    """Read and validate one CheXpert-format CSV.

    Args:
        path: a CheXpert ``train.csv``/``valid.csv`` or a split file in that format.
        report: collects skipped rows, or raises on the first problem.

    Returns:
        The valid rows with the CheXpert columns (labels as float, NaN = blank,
        Age as float) plus ``patient`` (``patient00001``), ``study``
        (``patient00001/study1``) and ``line`` (the row's line in the file).
    """
    frame = read_csv_rows(path, report)
    _check_columns(path, frame)
    frame = frame[[*COLUMNS, "line"]].reset_index(drop=True)

    labels, bad_label = parse_labels(path, frame)

    def label_reason(row: pd.Series) -> str:
        bad = [
            f"{c}={row[c]!r}"
            for c in CLASSES
            if row[c].strip() != "" and pd.to_numeric(row[c].strip(), errors="coerce") not in LABEL_VALUES
        ]
        return f"unknown label value {', '.join(bad)}; expected 1.0, 0.0, -1.0 or blank"

    ids = frame["Path"].str.extract(PATH_PATTERN)
    inside = frame["Path"].map(relative_path)
    bad_path = (ids["patient"].isna() | inside.isna()).to_numpy()
    bad_view = ~frame["Frontal/Lateral"].isin(VIEW_VALUES).to_numpy()
    bad_projection = ~frame["AP/PA"].isin(PROJECTION_VALUES + ("",)).to_numpy()
    bad_sex = ~frame["Sex"].isin(SEX_VALUES + ("",)).to_numpy()
    age = pd.to_numeric(frame["Age"], errors="coerce")
    bad_age = (age.isna() & (frame["Age"].str.strip() != "")).to_numpy() | ~age.between(0, 120).to_numpy()
    bad_age &= ~(frame["Age"].str.strip() == "").to_numpy()
    duplicate = inside.duplicated().to_numpy() & ~inside.isna().to_numpy()  # the same file, however spelled

    checks = [
        (
            bad_path,
            lambda r: f"Path {r['Path']!r} does not look like "
            "'<dataset>/<train|valid>/patientNNNNN/studyN/viewN_frontal.jpg' inside the dataset",
        ),
        (bad_label, label_reason),
        (bad_view, lambda r: f"Frontal/Lateral is {r['Frontal/Lateral']!r}; expected Frontal or Lateral"),
        (bad_projection, lambda r: f"AP/PA is {r['AP/PA']!r}; expected AP, PA, LL, RL or blank"),
        (bad_sex, lambda r: f"Sex is {r['Sex']!r}; expected Male, Female, Unknown or blank"),
        (bad_age, lambda r: f"Age is {r['Age']!r}; expected a number from 0 to 120, or blank"),
        (duplicate, lambda r: f"Path {r['Path']!r} names a file listed before it"),
    ]
    bad_any = apply_checks(path, frame, checks, report)

    out = frame.copy()
    out[list(CLASSES)] = labels
    out["Age"] = age.astype(float)
    out["patient"] = ids["patient"]
    out["study"] = ids["patient"] + "/" + ids["study"]
    return out.loc[~bad_any].reset_index(drop=True)


def relative_path(csv_path: str) -> str | None:
    """A CSV ``Path`` as a normalised path inside the dataset root (``train/patient1/study1/view1_frontal.jpg``).

    CheXpert's paths start with the dataset folder's own name
    (``CheXpert-v1.0-small/train/...``); that first component is dropped,
    whatever the folder is called locally. Paths that start directly with
    ``train/``, ``valid/`` or ``test/`` are already relative. ``.`` and empty
    components are dropped, so one file has one spelling. None for a path
    that could leave the root: absolute, a drive, a backslash or any ``..``.
    """
    text = csv_path.strip()
    if not text or text.startswith("/") or "\\" in text or re.match(r"[A-Za-z]:", text):
        return None
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    if len(parts) > 1 and parts[0] not in ("train", "valid", "test"):
        parts = parts[1:]
    return "/".join(parts) or None


def resolve_image(root: Path, csv_path: str) -> Path:
    """The file for a CSV ``Path`` value, under ``root`` (see :func:`relative_path`; never outside it)."""
    inside = relative_path(csv_path)
    if inside is None:
        raise DataError(f"Path {csv_path!r} leaves the dataset folder {root}")
    return root.joinpath(*inside.split("/"))


def read_dataset(root: Path, train_csv: str, test_csv: str | None, report: Report) -> pd.DataFrame:
    """Read a dataset's train table and, when there is one, its test table.

    Args:
        root: the dataset folder (``CheXpert-v1.0-small``) or zip archive
            (``CheXpert-v1.0-small.zip``, read in place: see :mod:`cxrssl.data.archive`).
        train_csv: the training table, relative to the dataset's root or absolute.
        test_csv: the test table (CheXpert's ``valid.csv`` or a user's test split),
            or None when the test set is to be carved out of train by patient.
        report: collects skipped rows, or raises on the first problem.

    Returns:
        One frame, with ``origin`` = "train" or "test" naming the table a row came from,
        ``table`` its CSV file, ``line`` its line there and ``file`` the resolved image path
        (``archive.zip::member`` inside an archive).
    """
    if not (root.is_dir() or (archive.is_archive(root) and root.is_file())):
        raise DataError(
            f"data.root: {root} is not a folder or a .zip file (expected a CheXpert dataset, "
            "such as the folder CheXpert-v1.0-small or CheXpert-v1.0-small.zip)"
        )
    root = archive.dataset_root(root, train_csv)
    tables = [("train", train_csv)] + ([("test", test_csv)] if test_csv else [])
    frames = []
    for origin, name in tables:
        if not archive.exists(root / name):
            raise DataError(f"data.{origin}_csv: {root / name}: no such file")
        table = read_table(root / name, report)
        if table.empty:
            raise DataError(
                f"data.{origin}_csv: {root / name}: no valid rows ({len(report.problems)} skipped); "
                "a table needs at least one image"
            )
        table["origin"] = origin
        table["table"] = str(root / name)
        frames.append(table)
    frame = pd.concat(frames, ignore_index=True)
    duplicate = frame["Path"].map(relative_path).duplicated(keep="first").to_numpy()
    if duplicate.any():
        report.add(
            [
                Problem(str(root / test_csv), int(row["line"]), f"Path {row['Path']!r} is also in {train_csv}")
                for _, row in frame[duplicate].iterrows()
            ]
        )
        frame = frame[~duplicate].reset_index(drop=True)
    if frame.empty:
        names = " and ".join(str(root / name) for _, name in tables)
        raise DataError(f"{names}: no valid rows ({len(report.problems)} skipped)")
    frame["file"] = [str(resolve_image(root, p)) for p in frame["Path"]]
    return frame
