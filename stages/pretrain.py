"""Stage ``pretrain@<method>``: self-supervised pretraining of a backbone on the train split's images.

    python -m stages.pretrain moco data/preprocessed data/splits/train.csv \\
        models/pretrain/moco.pt metrics/pretrain/moco.json plots/pretrain/moco.csv
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from cxrssl import distributed
from cxrssl.data.splits import read_split
from cxrssl.data.store import ImageStore
from cxrssl.errors import ParamError
from cxrssl.io import atomic_file, write_csv, write_json
from cxrssl.methods import CONFIGS, METHODS, validate_method_config
from cxrssl.params import from_dict, read_params
from cxrssl.pretraining import PretrainConfig, check_batch_split, pretrain
from stages._cli import run, start_processes

CHECKPOINTS = Path("checkpoints")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pretrain a backbone with one self-supervised method.")
    parser.add_argument("method", help=f"one of {', '.join(METHODS)}")
    parser.add_argument("store", type=Path, help="the preprocessed store folder")
    parser.add_argument("train", type=Path, help="the split stage's train.csv")
    parser.add_argument("model", type=Path, help="where to write the backbone (.pt)")
    parser.add_argument("metrics", type=Path, help="where to write the metrics (JSON)")
    parser.add_argument("plot", type=Path, help="where to write the loss curve (CSV)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINTS)
    args = parser.parse_args(argv)
    if args.method not in METHODS:
        raise ParamError(f"unknown method {args.method!r}; expected one of {', '.join(METHODS)}")
    params = read_params(args.params)
    section = params.get("pretrain") or {}
    config = from_dict(PretrainConfig, "pretrain.common", section.get("common"))
    method_config = from_dict(CONFIGS[args.method], f"pretrain.{args.method}", section.get(args.method))
    validate_method_config(args.method, method_config)
    check_batch_split(config.batch_size, distributed.validate_params(params.get("distributed"))["nproc_per_node"])
    device = start_processes("stages.pretrain", argv, params.get("distributed"))
    if device is None:  # ran under torchrun
        return

    rows = read_split(args.train.parent, args.train.stem, ["row"])["row"].to_numpy()
    images = distributed.load_images(ImageStore(args.store), rows)
    checkpoint = args.checkpoints / f"pretrain-{args.method}.ckpt"
    distributed.log(f"pretrain@{args.method}: {len(images)} images at {images.shape[-1]} px, {config.backbone}, "
        f"{config.epochs} epochs, batch {config.batch_size}, on {device}"
          + (f" x {distributed.world_size()} processes" if distributed.active() else ""))
    method, history, summary = pretrain(args.method, images, config, method_config, checkpoint, device)
    if not distributed.is_main():
        return

    state = {"method": args.method, "backbone_name": config.backbone, "feature_dim": method.feature_dim,
             "image_size": int(images.shape[-1]), "backbone": method.backbone.state_dict(),
             "config": {"common": asdict(config), args.method: asdict(method_config)}, "history": history}
    with atomic_file(args.model, "wb") as handle:
        torch.save(state, handle)
    write_csv(args.plot, pd.DataFrame(history))
    write_json(args.metrics, {k: round(v, 5) if isinstance(v, float) else v for k, v in summary.items()})
    checkpoint.unlink(missing_ok=True)
    print(f"pretrain@{args.method}: final loss {summary['final_loss']:.4f}, {summary['images_per_s']:.0f} images/s, "
        f"embedding std {summary['embedding_std']:.4f} (uniform {summary['embedding_std_uniform']:.4f}), "
        f"{summary['wall_time_s']:.0f} s")


if __name__ == "__main__":
    run(main, "pretrain")
