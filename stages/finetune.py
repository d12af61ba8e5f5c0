"""Stage ``finetune@<init>-<pct>``: fine-tune an initial backbone on a label fraction of the train split.

    python -m stages.finetune data/preprocessed data/splits models/pretrain/{init}.pt \\
        models/finetune/{init}-{pct} metrics/finetune/{init}-{pct}.json plots/finetune/{init}-{pct}.csv \\
        live/finetune/{init}-{pct}

The cell (``simclr-10``) comes from DVC (``DVC_STAGE``) or ``--cell simclr-10``;
``{init}`` and ``{pct}`` in the paths are filled in with it.

Selects the model on val (macro AUROC), then writes, in the output folder,
the selected weights per seed, the sigmoid scores of every val and test image
(val for the evaluate stage's thresholds, test for its metrics) and the
protocol this percent ran (linear if it is in ``finetune.linear_pcts``, else
full): see :mod:`cxrssl.cells`. Test labels are never read here.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from cxrssl import distributed
from cxrssl.cells import write_cell
from cxrssl.cli import check_name, fill, run, stage_item, stage_parser
from cxrssl.data.schema import CLASSES
from cxrssl.data.splits import read_split, subset
from cxrssl.data.store import ImageStore
from cxrssl.errors import DataError, ParamError
from cxrssl.finetune import FinetuneConfig, finetune_cell
from cxrssl.initial import load_initial
from cxrssl.io import write_csv, write_json
from cxrssl.params import from_dict, read_params
from cxrssl.tracking import Tracker

CHECKPOINTS = Path("checkpoints")


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(
        "Fine-tune a backbone on a label fraction.",
        {
            "store": "the preprocessed store folder",
            "splits": "the split stage's folder",
            "initial": "the initial backbone (.pt)",
            "out": "output folder (weights and predictions)",
            "metrics": "where to write the stage's metrics (JSON)",
            "plot": "where to write the training curves (CSV)",
            "live": "the live log's folder (DVCLive: metrics.json and plots/)",
        },
    )
    parser.add_argument("--cell", help="<init>-<pct>, such as simclr-10 (default: from DVC's DVC_STAGE)")
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINTS)
    args = parser.parse_args(argv)
    params = read_params(args.params)
    init, pct = parse_cell(stage_item("finetune", args.cell))
    initial, out, metrics, plot, live_folder = (
        fill(path, init=init, pct=pct) for path in (args.initial, args.out, args.metrics, args.plot, args.live)
    )
    config = from_dict(FinetuneConfig, "finetune", params.get("finetune"))
    protocol = config.protocol_for(pct)
    device = distributed.start("stages.finetune", argv, params.get("distributed"))
    if device is None:  # ran under torchrun
        return

    labels = list(CLASSES)
    train = read_split(args.splits, "train", ["row", "patient", "min_fraction", *labels])
    val = read_split(args.splits, "val", ["row", "patient", *labels])
    test = read_split(args.splits, "test", ["row", "patient"])
    part = subset(train, pct / 100)
    if part.empty or val.empty:
        raise DataError(f"{args.splits}: the {pct}% train subset or val is empty; check the split stage")
    store = ImageStore(args.store)
    provenance = store.settings()
    train_images, val_images, test_images = (
        distributed.load_images(store, frame["row"].to_numpy()) for frame in (part, val, test)
    )
    backbone, dim, meta = load_initial(initial)
    initial_hash = hashlib.md5(initial.read_bytes()).hexdigest()  # a checkpoint resumes only the same start
    stage = f"finetune@{init}-{pct}"
    distributed.log(
        f"{stage}: {len(part)} train images ({part['patient'].nunique()} patients), {len(val)} val, "
        f"{protocol} protocol, {meta['backbone_name']}, seeds {config.seeds}, on {device}"
        f"{distributed.describe()}"
    )

    start = time.perf_counter()
    live = Tracker(live_folder)
    ran = finetune_cell(
        backbone,
        dim,
        (init, pct, meta["backbone_name"]),
        (part, train_images),
        (val, val_images),
        (test, test_images),
        config,
        device,
        lambda seed: args.checkpoints / f"{stage.replace('@', '-')}-seed{seed}.ckpt",
        stage,
        fingerprint=f"{init}|{pct}|{initial_hash}|{len(part)}",
        provenance=provenance,
        live=live,
    )
    live.close()
    if not distributed.is_main():
        return
    write_cell(out, ran.models, ran.predictions, {"init": init, "pct": pct, "protocol": protocol})
    val_auroc = float(np.mean([r["val_auroc_macro"] for r in ran.runs.values()]))
    write_json(
        metrics,
        {
            "init": init,
            "pct": pct,
            "protocol": protocol,
            "train_images": len(part),
            "train_patients": int(part["patient"].nunique()),
            "val_auroc_macro": round(val_auroc, 5),
            "seeds": ran.runs,
        },
    )
    write_csv(plot, ran.curves)
    for seed in config.seeds:
        (args.checkpoints / f"{stage.replace('@', '-')}-seed{seed}.ckpt").unlink(missing_ok=True)
    print(
        f"{stage}: val macro AUROC {val_auroc:.4f} (best epochs {[r['best_epoch'] for r in ran.runs.values()]}), "
        f"{time.perf_counter() - start:.0f} s"
    )


def parse_cell(cell: str) -> tuple[str, int]:
    """(init, pct) of ``<init>-<pct>``, such as ``simclr-10``."""
    init, _, pct = cell.rpartition("-")
    check_name("inits", init)
    if not pct.isdigit() or not 1 <= int(pct) <= 100:
        raise ParamError(f"finetune cell {cell!r}: expected <init>-<pct> with a label percent in 1..100")
    return init, int(pct)


if __name__ == "__main__":
    run(main, "finetune", cleanup=distributed.cleanup)
