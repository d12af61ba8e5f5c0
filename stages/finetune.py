"""Stage ``finetune@<init>-<pct>``: fine-tune an initial backbone on a label fraction of the train split.

    python -m stages.finetune simclr 10 data/preprocessed data/splits models/pretrain/simclr.pt \\
        models/finetune/simclr-10 metrics/finetune/simclr-10.json plots/finetune/simclr-10.csv

Selects the model on val (macro AUROC), then writes, in the output folder,
the selected weights per seed (``model-seed<k>.pt``) and ``predictions.csv``:
the sigmoid scores of every val and test image (val for the evaluate stage's
thresholds, test for its metrics), and ``cell.json`` (init, percent, and the
protocol this percent ran: ``finetune.protocol_by_pct`` or else
``finetune.protocol``). Test labels are never read here.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cxrssl import distributed
from cxrssl.data.schema import CLASSES
from cxrssl.data.splits import read_split, subset
from cxrssl.data.store import ImageStore
from cxrssl.errors import DataError, ParamError
from cxrssl.finetune import FinetuneConfig, finetune, predict
from cxrssl.initial import load_initial
from cxrssl.io import atomic_dir, write_csv, write_json
from cxrssl.params import from_dict, read_params
from stages._cli import run, start_processes

CHECKPOINTS = Path("checkpoints")
SCORE_COLUMNS = [f"score:{name}" for name in CLASSES]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fine-tune a backbone on a label fraction.")
    parser.add_argument("init", help="the initial backbone's name (random, moco, simclr, byol, swav, imagenet)")
    parser.add_argument("pct", type=int, help="label percent (an integer in 1..100)")
    parser.add_argument("store", type=Path, help="the preprocessed store folder")
    parser.add_argument("splits", type=Path, help="the split stage's folder")
    parser.add_argument("initial", type=Path, help="the initial backbone (.pt)")
    parser.add_argument("out", type=Path, help="output folder (weights and predictions)")
    parser.add_argument("metrics", type=Path, help="where to write the stage's metrics (JSON)")
    parser.add_argument("plot", type=Path, help="where to write the training curves (CSV)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINTS)
    args = parser.parse_args(argv)
    if not 1 <= args.pct <= 100:
        raise ParamError(f"label percent {args.pct} is not an integer in 1..100")
    params = read_params(args.params)
    config = from_dict(FinetuneConfig, "finetune", params.get("finetune"))
    config = replace(config, protocol=config.protocol_for(args.pct), protocol_by_pct={})
    device = start_processes("stages.finetune", argv, params.get("distributed"))
    if device is None:  # ran under torchrun
        return

    labels = list(CLASSES)
    train = read_split(args.splits, "train", ["row", "patient", "min_fraction", *labels])
    val = read_split(args.splits, "val", ["row", "patient", *labels])
    test = read_split(args.splits, "test", ["row", "patient"])
    part = subset(train, args.pct / 100)
    if part.empty or val.empty:
        raise DataError(f"{args.splits}: the {args.pct}% train subset or val is empty; check the split stage")
    store = ImageStore(args.store)
    train_images, val_images, test_images = (distributed.load_images(store, frame["row"].to_numpy())
                                             for frame in (part, val, test))
    backbone, dim, meta = load_initial(args.initial)
    initial_hash = hashlib.md5(args.initial.read_bytes()).hexdigest()  # a checkpoint resumes only the same start
    stage = f"finetune@{args.init}-{args.pct}"
    distributed.log(f"{stage}: {len(part)} train images ({part['patient'].nunique()} patients), {len(val)} val, "
        f"{config.protocol} protocol, {meta['backbone_name']}, seeds {config.seeds}, on {device}"
        + (f" x {distributed.world_size()} processes" if distributed.active() else ""))

    predictions, curves, runs, models = [], [], {}, {}
    start = time.perf_counter()
    checkpoints = []
    for seed in config.seeds:
        checkpoint = args.checkpoints / f"{stage.replace('@', '-')}-seed{seed}.ckpt"
        checkpoints.append(checkpoint)
        model, history, summary = finetune(
            backbone, dim, train_images, part[labels].to_numpy(dtype=float), val_images,
            val[labels].to_numpy(dtype=float), config, seed, device, checkpoint, stage=f"{stage} seed {seed}",
            fingerprint=f"{args.init}|{args.pct}|{initial_hash}|{len(part)}")
        for frame, images, name in ((val, val_images, "val"), (test, test_images, "test")):
            scores = predict(model, images, device, config.amp)
            predictions.append(pd.concat([
                pd.DataFrame({"split": name, "seed": seed, "row": frame["row"].to_numpy(),
                              "patient": frame["patient"].to_numpy()}),
                pd.DataFrame(scores, columns=SCORE_COLUMNS)], axis=1))
        curves.append(pd.DataFrame(history).assign(seed=seed))
        runs[str(seed)] = {k: round(v, 5) if isinstance(v, float) else v for k, v in summary.items()}
        models[seed] = {"init": args.init, "pct": args.pct, "seed": seed, "backbone_name": meta["backbone_name"],
                        "feature_dim": dim, "image_size": int(train_images.shape[-1]), "classes": labels,
                        "model": model.state_dict(), "config": asdict(config)}
    if not distributed.is_main():
        return
    with atomic_dir(args.out) as tmp:
        for seed, state in models.items():
            torch.save(state, tmp / f"model-seed{seed}.pt")
        write_csv(tmp / "predictions.csv", pd.concat(predictions, ignore_index=True))
        write_json(tmp / "cell.json", {"init": args.init, "pct": args.pct, "protocol": config.protocol})
    val_aurocs = [run_["val_auroc_macro"] for run_ in runs.values()]
    write_json(args.metrics, {"init": args.init, "pct": args.pct, "protocol": config.protocol,
                              "train_images": len(part), "train_patients": int(part["patient"].nunique()),
                              "val_auroc_macro": round(float(np.mean(val_aurocs)), 5),
                              "wall_time_s": round(time.perf_counter() - start, 1), "seeds": runs})
    write_csv(args.plot, pd.concat(curves, ignore_index=True))
    for checkpoint in checkpoints:
        checkpoint.unlink(missing_ok=True)
    print(f"{stage}: val macro AUROC {np.mean(val_aurocs):.4f} (best epochs "
          f"{[r['best_epoch'] for r in runs.values()]}), {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    run(main, "finetune")
