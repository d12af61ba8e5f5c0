"""Stage ``split``: patient-level train/val/test, uncertainty policy, nested label fractions.

    python -m stages.split data/preprocessed/index.csv data/splits metrics/split.json

Writes ``train.csv``, ``val.csv`` and ``test.csv``, and ``pretrain.csv``: the
train images without their labels (``row, Path, patient``), what
self-supervised pretraining reads, so that a change of label policy leaves it
(and the pretrained backbones) as they were.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from cxrssl.cli import run, stage_parser
from cxrssl.data.schema import COLUMNS
from cxrssl.data.splits import SplitConfig, check_percents, make_splits
from cxrssl.errors import DataError
from cxrssl.io import atomic_dir, write_csv, write_json
from cxrssl.params import from_dict, read_params

OUT_COLUMNS = [*COLUMNS, "patient", "study", "row"]
PRETRAIN_COLUMNS = ["row", "Path", "patient"]


def read_index(path: Path) -> pd.DataFrame:
    """The store's index (written by the preprocess stage)."""
    if not path.is_file():
        raise DataError(f"{path}: missing; run the preprocess stage first")
    return pd.read_csv(path, dtype={"AP/PA": str, "Sex": str}, keep_default_na=True)


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(
        "Split by patient and apply the label policy.",
        {
            "index": "the preprocessed store's index.csv",
            "out": "folder for train.csv, val.csv, test.csv",
            "metrics": "where to write per-split class counts (JSON)",
        },
    )
    args = parser.parse_args(argv)
    params = read_params(args.params)
    config = from_dict(SplitConfig, "split", params.get("split"))
    percents = check_percents(params.get("label_percents"))

    splits, summary = make_splits(read_index(args.index), config, percents)
    overlap = summary["patient_overlap"]
    if overlap["patients"]:
        action = {"drop": "dropped from train", "keep": "KEPT in train as asked"}[config.on_patient_overlap]
        print(f"\nWARNING: {overlap['message']}; they were {action}.\n", file=sys.stderr)
    with atomic_dir(args.out) as tmp:
        for name, frame in splits.items():
            columns = OUT_COLUMNS + (["min_fraction"] if name == "train" else [])
            write_csv(tmp / f"{name}.csv", frame[columns])
        write_csv(tmp / "pretrain.csv", splits["train"][PRETRAIN_COLUMNS])
        write_json(args.metrics, summary)
    sizes = ", ".join(
        f"{name} {summary[name]['n_images']} images/{summary[name]['n_patients']} patients" for name in splits
    )
    print(f"split ({config.uncertainty}): {sizes}")
    for pct, part in summary["label_fractions"].items():
        missing = part["classes_without_positive"]
        note = f"; no positive for {', '.join(missing)}" if missing else ""
        print(f"  {pct}% labels: {part['n_images']} images, {part['n_patients']} patients{note}")


if __name__ == "__main__":
    run(main, "split")
