"""Stage ``pretrain@<method>``: self-supervised pretraining of a backbone on the train split's images.

    python -m stages.pretrain data/preprocessed data/splits/pretrain.csv \\
        models/pretrain/{method}.pt metrics/pretrain/{method}.json plots/pretrain/{method}.csv \\
        live/pretrain/{method}

The method comes from DVC (``DVC_STAGE``) or ``--method moco``; ``{method}``
in the paths is filled in with it. Only the images are read
(``pretrain.csv`` holds no labels), so a label policy never reruns this stage.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from cxrssl import distributed
from cxrssl.cli import check_name, fill, run, stage_item, stage_parser
from cxrssl.data.splits import read_split
from cxrssl.data.store import ImageStore
from cxrssl.errors import ParamError
from cxrssl.io import atomic_file, write_csv, write_json
from cxrssl.methods import METHODS, config_class
from cxrssl.params import from_dict, read_params
from cxrssl.pretraining import PretrainConfig, check_batch_split, pretrain
from cxrssl.tracking import Tracker
from cxrssl.train import without_timings

CHECKPOINTS = Path("checkpoints")


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(
        "Pretrain a backbone with one self-supervised method.",
        {
            "store": "the preprocessed store folder",
            "images": "the split stage's pretrain.csv (the train images' rows)",
            "model": "where to write the backbone (.pt)",
            "metrics": "where to write the metrics (JSON)",
            "plot": "where to write the loss curve (CSV)",
            "live": "the live log's folder (DVCLive: metrics.json and plots/)",
        },
    )
    parser.add_argument("--method", help=f"one of {', '.join(METHODS)} (default: from DVC's DVC_STAGE)")
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINTS)
    args = parser.parse_args(argv)
    method = check_name("methods", stage_item("pretrain", args.method))
    if method not in METHODS:
        raise ParamError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    model_path, metrics_path, plot_path, live_folder = (
        fill(path, method=method) for path in (args.model, args.metrics, args.plot, args.live)
    )
    params = read_params(args.params)
    section = params.get("pretrain") or {}
    config = from_dict(PretrainConfig, "pretrain.common", section.get("common"))
    method_config = from_dict(config_class(method), f"pretrain.{method}", section.get(method))
    check_batch_split(config.batch_size, distributed.validate_params(params.get("distributed"))["nproc_per_node"])
    device = distributed.start("stages.pretrain", argv, params.get("distributed"))
    if device is None:  # ran under torchrun
        return

    rows = read_split(args.images.parent, args.images.stem, ["row"])["row"].to_numpy()
    images = distributed.load_images(ImageStore(args.store), rows)
    checkpoint = args.checkpoints / f"pretrain-{method}.ckpt"
    distributed.log(
        f"pretrain@{method}: {len(images)} images at {images.shape[-1]} px, {config.backbone}, "
        f"{config.epochs} epochs{'' if config.max_steps is None else f' (at most {config.max_steps} steps)'}, "
        f"batch {config.batch_size}, on {device}{distributed.describe()}"
    )
    live = Tracker(live_folder)
    trained, history, summary = pretrain(method, images, config, method_config, checkpoint, device, live)
    live.close()
    if not distributed.is_main():
        return

    state = {
        "method": method,
        "backbone_name": config.backbone,
        "feature_dim": trained.feature_dim,
        "image_size": int(images.shape[-1]),
        "backbone": trained.backbone.state_dict(),
        "config": {"common": asdict(config), method: asdict(method_config)},
        "history": without_timings(history),
    }
    with atomic_file(model_path, "wb") as handle:
        torch.save(state, handle)
    write_csv(plot_path, pd.DataFrame(without_timings(history)))
    write_json(
        metrics_path,
        {
            k: round(v, 5) if isinstance(v, float) else v
            for k, v in summary.items()
            if k not in ("images_per_s", "wall_time_s")
        },
    )  # timings are printed (and logged live under perf/), never kept here
    checkpoint.unlink(missing_ok=True)
    print(
        f"pretrain@{method}: final loss {summary['final_loss']:.4f}, {summary['images_per_s']:.0f} images/s, "
        f"embedding std {summary['embedding_std']:.4f} (uniform {summary['embedding_std_uniform']:.4f}), "
        f"{summary['wall_time_s']:.0f} s"
    )


if __name__ == "__main__":
    run(main, "pretrain", cleanup=distributed.cleanup)
