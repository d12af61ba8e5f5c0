"""Stage ``evaluate``: val and test metrics with bootstrap intervals for every (init, label percent) cell, and plots.

    python -m stages.evaluate data/splits models/finetune metrics/evaluate.json \\
        metrics/evaluate_per_class.csv plots/evaluate

Writes ``metrics/evaluate.json`` as ``{init: {pct: {auroc_macro, auroc_5,
ap_macro, f1_macro, kappa_macro, <metric>_low, <metric>_high, val_auroc_macro,
val_auroc_macro_low, ..., protocol, ...}}}`` (:func:`cxrssl.evaluation.evaluate_cell`;
``protocol`` is the cell's fine-tuning protocol), the per-class table, and
in the plots folder the figures (``label_efficiency.png``,
``auroc_per_class.png``) and, under ``curves/``, the data DVC draws
(``label_efficiency.csv`` on test and ``label_efficiency_val.csv`` on val,
per-class ROC and PR curves ``roc/<cell>.csv``,
``pr/<cell>.csv``).

With ``--cross-dataset-metrics PATH``, also writes there every cell's
classifiers scored on the test images of ``evaluate.cross_dataset`` (another
dataset: ``{"dataset": {...}, init: {pct: {...}}}``, the same metrics over
the classes both datasets label; ``{"dataset": null}`` when it is not set).
DVC does not track the external folder itself: after changing its contents,
``dvc repro -f evaluate``.
"""

from __future__ import annotations

import time
from pathlib import Path

from cxrssl.cli import check_name, run, stage_parser
from cxrssl.cross_dataset import CrossDatasetConfig, score_cells
from cxrssl.data.images import PreprocessConfig
from cxrssl.data.schema import CLASSES
from cxrssl.data.splits import read_split
from cxrssl.errors import ParamError
from cxrssl.evaluation import EvaluateConfig, evaluate_cells
from cxrssl.io import atomic_dir, write_csv, write_json
from cxrssl.params import check_list, from_dict, read_params
from cxrssl.plots import evaluation_plots


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(
        "Evaluate every fine-tuned cell on val and test.",
        {
            "splits": "the split stage's folder",
            "finetune": "the finetune stages' parent folder",
            "metrics": "where to write the metrics (JSON)",
            "per_class": "where to write the per-class table (CSV)",
            "plots": "folder for the plots",
        },
    )
    parser.add_argument(
        "--cross-dataset-metrics",
        type=Path,
        default=None,
        help="where to write evaluate.cross_dataset's metrics (JSON)",
    )
    args = parser.parse_args(argv)
    params = read_params(args.params)
    config = from_dict(EvaluateConfig, "evaluate", params.get("evaluate"))
    cross = None
    if config.cross_dataset is not None:
        cross = from_dict(CrossDatasetConfig, "evaluate.cross_dataset", config.cross_dataset)
        if args.cross_dataset_metrics is None:
            raise ParamError("evaluate.cross_dataset is set but the stage has no --cross-dataset-metrics path")
    inits = [check_name("inits", init) for init in check_list("inits", params.get("inits"), str)]
    percents = check_list("label_percents", params.get("label_percents"), int)
    val = read_split(args.splits, "val", ["row", "patient", *CLASSES])
    test = read_split(args.splits, "test", ["row", "patient", *CLASSES])

    start = time.perf_counter()
    study = evaluate_cells(args.finetune, inits, percents, val, test, config)
    for cell, note in study.notes:
        print(f"evaluate: {cell}: {note}")
    crossed = {"dataset": None}
    if cross is not None:  # before anything is written: a bad external image leaves nothing
        preprocess = from_dict(PreprocessConfig, "preprocess", params.get("preprocess"))
        crossed = score_cells(cross, preprocess, args.finetune, study.predictions, val, config)
    with atomic_dir(args.plots) as tmp:
        caption = f"{len(test)} test images; 95% CI by patient bootstrap ({config.bootstrap})"
        evaluation_plots(
            tmp, study.summary, study.per_class, study.predictions, test, inits, percents, caption, study.protocols
        )
    write_csv(args.per_class, study.per_class.round(5))
    write_json(args.metrics, study.summary)
    if args.cross_dataset_metrics is not None:
        write_json(args.cross_dataset_metrics, crossed)
    for init in inits:
        cells = study.summary[init]
        line = "  ".join(
            f"{p}% {cells[str(p)]['protocol']}: val {_interval(cells[str(p)], 'val_auroc_macro')}, "
            f"test {_interval(cells[str(p)], 'auroc_macro')}"
            for p in percents
        )
        print(f"evaluate: {init:>8}  macro AUROC  {line}")
    print(
        f"evaluate: {len(study.predictions)} cells, {config.bootstrap} resamples, {time.perf_counter() - start:.1f} s"
    )


def _interval(cell: dict, key: str) -> str:
    if cell[key] is None:
        return "null"
    return f"{cell[key]:.3f} [{cell[f'{key}_low']:.3f}, {cell[f'{key}_high']:.3f}]"


if __name__ == "__main__":
    run(main, "evaluate")
