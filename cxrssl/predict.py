"""Apply a classifier from the study to new radiographs: one CSV row per image.

    python -m cxrssl.predict simclr-100 scans/ more.png --out predictions.csv
    cxrssl-predict simclr-100 scans/ --out predictions.csv      # the same, as installed by pip

The model is a finetune cell (``simclr-100``: its first seed's
``models/finetune/simclr-100/model-seed<k>.pt``, or ``--seed k``) or a model
file. Images are PNG, JPEG or DICOM files (:mod:`cxrssl.data.dicom`);
folders, searched recursively for ``.png``, ``.jpg``, ``.jpeg``, ``.dcm``,
``.dicom`` and for DICOM by content whatever the name (PACS exports name
files by UID, or give them no extension); or CheXpert- or NIH-format tables (``.csv``), whose images are found
as the study finds them and whose labels are kept (U-Ignore), with the AUROC
of each class they label printed at the end. A row whose image is missing
is an error row for a CheXpert table, and a skipped row (with a warning) for
an NIH table, whose reader finds images by name under ``images*/``. Each
image is prepared exactly as the model's training images were, with the
preprocessing recorded in the model file (not today's params.yaml), and
scored in batches, on the GPU when there is one.

With ``--cam DIR``, each image's most probable finding (``--cam-top k``
findings, or the ``--findings`` named) is explained: a PNG per image and
finding (``<row>-<file stem>-<finding>.png``, ``row`` its 0-based row in
the predictions CSV) with the radiograph and its map, the probability in
the caption (``--cam-method`` and ``--cam-layer``: HiResCAM at layer2 by
default, the committed study's ``gradcam`` settings). The maps and the CSV
are written together, or not at all.

The CSV has, per image, its path, ``prob:<class>`` for the 14 findings,
``call:<class>`` (1 when the probability reaches the threshold evaluate chose
on val for that cell and class, from ``results/evaluate_per_class.csv`` or
``--thresholds``; empty where no threshold is known), ``label:<class>`` for
images from a table, and ``error``: an image that cannot be read is a row
with its error, not the end of the batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cxrssl.cells import model_files
from cxrssl.cli import run
from cxrssl.data.chexpert import Report
from cxrssl.data.images import PreprocessConfig, load_and_preprocess
from cxrssl.data.schema import CLASSES
from cxrssl.data.sources import DataConfig, read_source
from cxrssl.data.splits import apply_policy
from cxrssl.errors import CxrsslError, DataError, ParamError
from cxrssl.finetune import load_classifier, predict
from cxrssl.gradcam import METHODS, overlay, target_layer
from cxrssl.io import atomic_dir, write_csv
from cxrssl.localisation import explain, save_png, slug
from cxrssl.metrics import auroc
from cxrssl.models import pick_device
from cxrssl.params import from_dict
from cxrssl.progress import progress

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
TABLE_SUFFIXES = (".csv", ".csv.gz")
PROB_COLUMNS = [f"prob:{name}" for name in CLASSES]
CALL_COLUMNS = [f"call:{name}" for name in CLASSES]
LABEL_COLUMNS = [f"label:{name}" for name in CLASSES]


def model_file(model: str, finetune: Path, seed: int | None) -> Path:
    """The model file ``model`` names: a path to a ``.pt``, or a cell under ``finetune`` (its ``seed``, or first)."""
    if model.endswith(".pt"):
        return Path(model)
    files = model_files(finetune / model)
    if seed is None:
        return next(iter(files.values()))
    if seed not in files:
        raise ParamError(f"{finetune / model}: no model for seed {seed}; it has seeds {list(files)}")
    return files[seed]


def is_image_name(path: Path) -> bool:
    """An image by its name, or any other file that holds DICOM (PACS exports name files by UID, or not at all)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def images_in(folder: Path) -> list[Path]:
    """The images under ``folder``, recursively (:func:`is_image_name`), in sorted order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_name(p))


def is_table(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(TABLE_SUFFIXES)


def read_table(path: Path, max_bytes: int) -> pd.DataFrame:
    """A CheXpert-format (``Path`` column) or NIH-format (``Image Index``) table: its images and labels.

    The images are found as the study finds them, relative to the table's
    folder (CheXpert's ``train.csv`` sits in the dataset folder; NIH's table
    beside ``images/``). A bad row is skipped with a warning naming its line.
    Returns ``file`` (the image) and the 14 label columns, U-Ignore applied
    (uncertain and unlabelled classes are NaN).
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as error:
        raise DataError(f"{path}: cannot read table ({error.strerror})") from None
    if path.name.lower().endswith(".gz"):
        source = "chexpert"  # NIH ships its table uncompressed
    else:
        columns = head.decode("utf-8-sig", errors="replace").splitlines()[0].split(",") if head else []
        source = "nih" if "Image Index" in columns else "chexpert" if "Path" in columns else None
    if source is None:
        raise DataError(f"{path}: a table needs a CheXpert 'Path' or an NIH 'Image Index' column")
    report = Report(skip=True, max_bytes=max_bytes)
    try:
        frame = read_source(DataConfig(source, str(path.parent), path.name, None, True), report)
    except DataError as error:  # named as the command line named it, not as a params key
        raise DataError(str(error).removeprefix("data.train_csv: ")) from None
    finally:
        for problem in report.problems[:5]:
            print(f"warning: skipped {problem}", file=sys.stderr)
        if len(report.problems) > 5:
            print(f"warning: skipped {len(report.problems) - 5} more rows of {path}", file=sys.stderr)
    labels = apply_policy(frame[list(CLASSES)].to_numpy(dtype=float), "ignore")
    return pd.concat([frame[["file"]], pd.DataFrame(labels, columns=LABEL_COLUMNS)], axis=1)


def image_files(inputs: list[Path], max_bytes: int) -> tuple[list, pd.DataFrame | None]:
    """The images named, and their labels when they come from tables.

    Files as given, folders searched recursively for PNG, JPEG and DICOM
    (each in sorted order), and CheXpert/NIH tables (:func:`read_table`).
    The labels frame has a row per image (NaN for images not from a table),
    or is None when no table was given.
    """
    found: list = []
    labelled: list[pd.DataFrame] = []
    for item in inputs:
        if item.is_dir():
            files = images_in(item)
        elif is_table(item):
            table = read_table(item, max_bytes)
            files = table["file"].tolist()
            labelled.append(table[LABEL_COLUMNS].set_axis(range(len(found), len(found) + len(files))))
        elif item.exists():
            files = [item]
        else:
            raise DataError(f"{item}: no such file or folder")
        found += files
    if not found:
        raise DataError(f"no PNG, JPEG or DICOM images in {', '.join(map(str, inputs))}")
    if not labelled:
        return found, None
    return found, pd.concat(labelled).reindex(range(len(found)))


def label_auroc(frame: pd.DataFrame) -> dict[str, float]:
    """{class: AUROC} of the scored images over each class the labels hold both positives and negatives of."""
    out = {}
    for name, prob, label in zip(CLASSES, PROB_COLUMNS, LABEL_COLUMNS, strict=True):
        known = frame[prob].notna() & frame[label].notna()
        y = frame.loc[known, label].to_numpy()
        if 0 < y.sum() < len(y):
            out[name] = float(auroc(y, frame.loc[known, prob].to_numpy(), np.ones((1, len(y))))[0])
    return out


def thresholds_for(table: Path, init: str | None, pct: int | None) -> dict[str, float]:
    """{class: threshold} evaluate chose on val for the cell, from its per-class table (empty if it has none)."""
    if not table.is_file():
        return {}
    frame = pd.read_csv(table)
    missing = {"init", "pct", "class", "threshold"} - set(frame.columns)
    if missing:
        raise DataError(f"{table}: no column {sorted(missing)[0]!r}; expected evaluate's per-class table")
    rows = frame[(frame["init"] == init) & (frame["pct"] == pct)]
    return {str(c): float(t) for c, t in zip(rows["class"], rows["threshold"], strict=True) if pd.notna(t)}


class Explainer:
    """Writes the map of chosen findings for each image: ``<row>-<stem>-<finding>.png`` in ``out``."""

    def __init__(self, out: Path, model, method: str, layer: str, findings: list[str], top: int, caption: str):
        unknown = [name for name in findings if name not in CLASSES]
        if unknown:
            raise ParamError(f"--findings {unknown[0]!r}: expected CheXpert class names such as 'Edema'")
        if method not in METHODS:
            raise ParamError(f"--cam-method {method!r}: expected one of {', '.join(METHODS)}")
        self.out, self.model, self.method, self.caption = out, model, method, caption
        try:
            self.layer = target_layer(model.backbone, layer)
        except ParamError:
            names = ", ".join(n for n, _ in model.backbone.named_children())
            raise ParamError(f'--cam-layer {layer!r}: expected "last" or one of {names}') from None
        self.findings = [CLASSES.index(name) for name in findings]
        self.top = top

    def chosen(self, probs: np.ndarray) -> list[int]:
        """The named findings, else the ``top`` most probable ones other than No Finding."""
        if self.findings:
            return self.findings
        ranked = [k for k in np.argsort(-probs) if CLASSES[k] != "No Finding"]
        return ranked[: self.top]

    def __call__(self, rows: list[int], paths: list, images: np.ndarray, probs: np.ndarray) -> None:
        wanted = [self.chosen(p) for p in probs]
        for start, cams, _ in explain(self.model, self.layer, images, len(images), self.method, wanted):
            for j, classes in enumerate(wanted[start : start + len(cams)]):
                i = start + j
                name = Path(str(paths[i]).rsplit("::", 1)[-1])  # a zip member's own name
                for k in classes:
                    lines = [f"{name.name}  {self.caption}", f"{CLASSES[k]}: p = {probs[i, k]:.2f}"]
                    picture = overlay(images[i], cams[j, k].numpy(), [], lines)
                    save_png(self.out / f"{rows[i]}-{name.stem}-{slug(CLASSES[k])}.png", picture)


def predict_files(
    files: list[Path],
    model: torch.nn.Module,
    preprocess: PreprocessConfig,
    thresholds: dict[str, float],
    device: torch.device,
    batch_size: int = 64,
    explainer: Explainer | None = None,
) -> pd.DataFrame:
    """One row per file: path, the probability and call of each class, and the error if the file was not read.

    With an ``explainer``, each batch's maps are written as the batch is scored.
    """
    probs = np.full((len(files), len(CLASSES)), np.nan)
    errors = [""] * len(files)
    batch: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if batch:
            images = np.stack([image for _, image in batch])
            rows = [i for i, _ in batch]
            probs[rows] = predict(model, torch.from_numpy(images), device, amp=device.type == "cuda")
            if explainer is not None:
                explainer(rows, [files[i] for i in rows], images, probs[rows])
            batch.clear()

    for i, path in enumerate(progress(files, desc="predict")):
        try:
            batch.append((i, load_and_preprocess(path, preprocess)))
        except CxrsslError as error:
            errors[i] = str(error)
        if len(batch) == batch_size:
            flush()
    flush()
    frame = pd.DataFrame(probs, columns=PROB_COLUMNS)
    for name, column in zip(CLASSES, CALL_COLUMNS, strict=True):
        threshold = thresholds.get(name)
        calls = pd.array([pd.NA] * len(files), dtype="Int64")
        if threshold is not None:
            read = ~np.isnan(probs[:, CLASSES.index(name)])
            calls[read] = (probs[read, CLASSES.index(name)] >= threshold).astype(int)
        frame[column] = calls
    frame.insert(0, "path", [str(p) for p in files])
    frame["error"] = errors
    return frame


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a finetune cell (simclr-100) or a model file (.pt)")
    parser.add_argument(
        "images", nargs="+", type=Path, help="PNG, JPEG or DICOM files, folders of them, or CheXpert/NIH tables"
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the predictions (CSV)")
    parser.add_argument("--seed", type=int, default=None, help="the cell's fine-tuning seed (default: its first)")
    parser.add_argument("--finetune", type=Path, default=Path("models/finetune"), help="the cells' parent folder")
    parser.add_argument(
        "--thresholds",
        type=Path,
        default=Path("results/evaluate_per_class.csv"),
        help="evaluate's per-class table, with the thresholds chosen on val",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cam", type=Path, default=None, help="a folder for the maps (HiResCAM overlays, PNG)")
    parser.add_argument("--cam-top", type=int, default=1, help="explain this many of each image's likeliest findings")
    parser.add_argument("--findings", nargs="*", default=[], help="explain these findings instead (class names)")
    parser.add_argument("--cam-method", default="hirescam", help=f"one of {', '.join(METHODS)}")
    parser.add_argument("--cam-layer", default="layer2", help='"last" or a backbone module such as layer3')
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.cam_top < 1:
        raise ParamError("--batch-size and --cam-top: expected positive integers")

    path = model_file(args.model, args.finetune, args.seed)
    model, meta = load_classifier(path)
    if "preprocess" not in meta:
        raise DataError(f"{path}: records no preprocessing; rerun its finetune stage")
    if list(meta["classes"]) != list(CLASSES):
        raise DataError(f"{path}: made for the classes {meta['classes']}, not CheXpert's 14")
    preprocess = from_dict(PreprocessConfig, "the model's preprocess", meta["preprocess"])
    source = meta.get("data", {}).get("source")
    if source == "phantoms":
        print(
            f"warning: {path} was trained on generated phantoms, not radiographs: its calls on real images "
            "mean nothing clinically",
            file=sys.stderr,
        )
    cell = f"{meta.get('init')}-{meta.get('pct')}"
    thresholds = thresholds_for(args.thresholds, meta.get("init"), meta.get("pct"))
    if not thresholds:
        print(
            f"warning: no thresholds for {cell} in {args.thresholds}: calls left empty",
            file=sys.stderr,
        )
    files, labels = image_files(args.images, preprocess.max_file_bytes)
    device = pick_device()
    model = model.to(device)

    def write(frame: pd.DataFrame) -> pd.DataFrame:
        if labels is not None:
            frame = pd.concat([frame.drop(columns="error"), labels, frame["error"]], axis=1)
        write_csv(args.out, frame)
        return frame

    if args.cam is None:
        frame = write(predict_files(files, model, preprocess, thresholds, device, args.batch_size))
    else:
        with atomic_dir(args.cam) as tmp:  # the maps appear with the CSV, or not at all
            caption = f"{cell}, trained on phantoms" if source == "phantoms" else cell
            explainer = Explainer(tmp, model, args.cam_method, args.cam_layer, args.findings, args.cam_top, caption)
            frame = write(predict_files(files, model, preprocess, thresholds, device, args.batch_size, explainer))
    failed = int((frame["error"] != "").sum())
    print(f"predict: {len(files) - failed} images scored, {failed} not read -> {args.out}")
    if labels is not None:
        scores = label_auroc(frame)
        listed = ", ".join(f"{name} {value:.3f}" for name, value in scores.items())
        macro = f"macro {np.mean(list(scores.values())):.3f} over {len(scores)} classes: " if scores else ""
        trained = " (a phantom-trained model)" if source == "phantoms" else ""
        print(f"predict: AUROC against the tables' labels{trained}: {macro}{listed or 'no class has both'}")


def cli() -> None:
    """The ``cxrssl-predict`` console script: errors as one line, not a traceback."""
    run(main, "predict")


if __name__ == "__main__":
    cli()
