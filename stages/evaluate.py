"""Stage ``evaluate``: test metrics with bootstrap intervals for every (init, label percent) cell, and plots.

    python -m stages.evaluate data/splits models/finetune metrics/evaluate.json \\
        metrics/evaluate_per_class.csv plots/evaluate

Writes ``metrics/evaluate.json`` as ``{init: {pct: {auroc_macro, auroc_5,
ap_macro, f1_macro, kappa_macro, <metric>_low, <metric>_high, protocol, ...}}}``
(``protocol``: the cell's fine-tuning protocol, from its ``cell.json``), the
per-class table, and in the plots folder: the label-efficiency curve
(``label_efficiency.csv`` and ``.png``), per-class ROC and PR curves
(``roc/`` and ``pr/``, one file per cell), per-class AUROC (``auroc_per_class/``
and ``auroc_per_class.png``).

With ``--cross-dataset-metrics PATH``, also writes there every cell's
classifiers scored on the test images of ``evaluate.cross_dataset`` (another
dataset: ``{"dataset": {...}, init: {pct: {...}}}``, the same metrics over
the classes both datasets label; ``{"dataset": null}`` when it is not set).
DVC does not track the external folder itself: after changing its contents,
``dvc repro -f evaluate``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from cxrssl.cross_dataset import CrossDatasetConfig
from cxrssl.data.images import PreprocessConfig
from cxrssl.data.schema import CLASSES
from cxrssl.data.splits import read_split
from cxrssl.errors import DataError, ParamError
from cxrssl.evaluation import EvaluateConfig, evaluate_cell
from cxrssl.io import atomic_dir, write_csv, write_json
from cxrssl.params import check_list, from_dict, read_params
from cxrssl.plots import label_efficiency, label_efficiency_png, per_class_png, write_curves
from stages._cli import run
from stages.finetune import SCORE_COLUMNS


def read_predictions(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: missing; run the finetune stages first")
    frame = pd.read_csv(path)
    missing = [c for c in ("split", "seed", "row", *SCORE_COLUMNS) if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; rerun its finetune stage")
    return frame


def read_protocol(folder: Path) -> str:
    """The protocol a finetune cell ran (its ``cell.json``)."""
    path = folder / "cell.json"
    try:
        return str(json.loads(path.read_text())["protocol"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{path}: missing or unreadable; rerun finetune@{folder.name}") from None


def cross_dataset(cross: CrossDatasetConfig | None, params: dict, cells: dict[str, pd.DataFrame], inits: list[str],
                  percents: list[int], val: pd.DataFrame, finetune: Path, config: EvaluateConfig) -> dict:
    """Every cell's classifiers scored on the external dataset: ``{"dataset": {...}, init: {pct: {...}}}``.

    ``{"dataset": null}`` when ``evaluate.cross_dataset`` is not set.
    """
    if cross is None:
        return {"dataset": None}
    from cxrssl.cross_dataset import external_predictions, load_external
    from cxrssl.finetune import load_classifier
    from cxrssl.pretraining import pick_device

    preprocess = from_dict(PreprocessConfig, "preprocess", params.get("preprocess"))
    device = pick_device()
    models = {cell: {int(p.stem.removeprefix("model-seed")): p
                     for p in sorted((finetune / cell).glob("model-seed*.pt"))} for cell in cells}
    for cell, paths in models.items():
        if not paths:
            raise DataError(f"{finetune / cell}: no model-seed<k>.pt; rerun finetune@{cell}")
    size = int(load_classifier(next(iter(models[next(iter(cells))].values())))[1]["image_size"])
    external, images, about = load_external(cross, preprocess, size)
    print(f"evaluate: cross-dataset {cross.source} at {cross.root}: {len(external)} images, classes "
          f"{', '.join(about['labelled_classes'])}")
    out: dict = {"dataset": about}
    for init in inits:
        out[init] = {}
        for pct in percents:
            cell = f"{init}-{pct}"
            loaded = {seed: load_classifier(path)[0] for seed, path in models[cell].items()}
            predictions = external_predictions(cells[cell], loaded, images, device, amp=True)
            out[init][str(pct)], _ = evaluate_cell(predictions, val, external, config)
            print(f"evaluate: cross-dataset {cell}: macro AUROC "
                  f"{_interval(out[init][str(pct)], 'auroc_macro')} over {out[init][str(pct)]['classes']} classes")
    return out


def _interval(cell: dict, key: str) -> str:
    if cell[key] is None:
        return "null"
    return f"{cell[key]:.3f} [{cell[f'{key}_low']:.3f}, {cell[f'{key}_high']:.3f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate every fine-tuned cell on the test split.")
    parser.add_argument("splits", type=Path, help="the split stage's folder")
    parser.add_argument("finetune", type=Path, help="the finetune stages' parent folder")
    parser.add_argument("metrics", type=Path, help="where to write the metrics (JSON)")
    parser.add_argument("per_class", type=Path, help="where to write the per-class table (CSV)")
    parser.add_argument("plots", type=Path, help="folder for the plots")
    parser.add_argument("--cross-dataset-metrics", type=Path, default=None,
                        help="where to write evaluate.cross_dataset's metrics (JSON)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = read_params(args.params)
    config = from_dict(EvaluateConfig, "evaluate", params.get("evaluate"))
    cross = None
    if config.cross_dataset is not None:
        cross = from_dict(CrossDatasetConfig, "evaluate.cross_dataset", config.cross_dataset)
        if args.cross_dataset_metrics is None:
            raise ParamError("evaluate.cross_dataset is set but the stage has no --cross-dataset-metrics path")
    inits = check_list("inits", params.get("inits"), str)
    percents = check_list("label_percents", params.get("label_percents"), int)
    labels = list(CLASSES)
    val = read_split(args.splits, "val", ["row", "patient", *labels])
    test = read_split(args.splits, "test", ["row", "patient", *labels])

    start = time.perf_counter()
    summary: dict = {}
    tables = []
    cells = {}
    protocols: dict[int, set[str]] = {}
    for init in inits:
        summary[init] = {}
        for pct in percents:
            cell = f"{init}-{pct}"
            path = args.finetune / cell / "predictions.csv"
            predictions = read_predictions(path)
            try:
                summary[init][str(pct)], table = evaluate_cell(predictions, val, test, config)
            except ValueError as error:
                raise DataError(f"{path}: {error}; rerun finetune@{cell}") from None
            protocol = read_protocol(args.finetune / cell)
            summary[init][str(pct)]["protocol"] = protocol
            protocols.setdefault(pct, set()).add(protocol)
            tables.append(table.assign(init=init, pct=pct, protocol=protocol))
            cells[cell] = predictions
            notes = table.loc[table["note"] != "", "note"].tolist()
            for note in notes:
                print(f"evaluate: {cell}: {note}")
    per_class = pd.concat(tables, ignore_index=True)
    first = ["init", "pct", "protocol"]
    per_class = per_class[[*first, *[c for c in per_class.columns if c not in first]]]

    if args.cross_dataset_metrics is not None:  # before anything is written: a bad external image leaves nothing
        crossed = cross_dataset(cross, params, cells, inits, percents, val, args.finetune, config)
    y_test = test[labels].to_numpy(dtype=float)
    with atomic_dir(args.plots) as tmp:
        efficiency = label_efficiency(summary, inits, percents)
        write_csv(tmp / "label_efficiency.csv", efficiency.round(5))
        for cell, predictions in cells.items():
            part = predictions[predictions["split"] == "test"]
            mean_scores = part.groupby("row")[SCORE_COLUMNS].mean().loc[test["row"].to_numpy()].to_numpy()
            write_curves(tmp, cell, y_test, mean_scores)
            init, pct = cell.rsplit("-", 1)
            bars = per_class[(per_class["init"] == init) & (per_class["pct"] == int(pct))][["class", "auroc"]]
            write_csv(tmp / "auroc_per_class" / f"{cell}.csv", bars.round(5))
        label_efficiency_png(efficiency, inits, tmp / "label_efficiency.png",
                             f"{len(test)} test images; 95% CI by patient bootstrap ({config.bootstrap})",
                             {pct: "/".join(sorted(p)) for pct, p in protocols.items()})
        per_class_png(per_class, inits, percents, tmp / "auroc_per_class.png")
    write_csv(args.per_class, per_class.round(5))
    write_json(args.metrics, summary)
    if args.cross_dataset_metrics is not None:
        write_json(args.cross_dataset_metrics, crossed)
    for init in inits:
        line = "  ".join(f"{pct}% {summary[init][str(pct)]['protocol']}: "
                         f"{_interval(summary[init][str(pct)], 'auroc_macro')}" for pct in percents)
        print(f"evaluate: {init:>8}  macro AUROC  {line}")
    print(f"evaluate: {len(cells)} cells, {config.bootstrap} resamples, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    run(main, "evaluate")
