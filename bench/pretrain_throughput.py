"""Pretraining speed per method against the backbone's bare forward+backward rate (the ceiling).

    python -m bench.pretrain_throughput [--steps 30] [--lightly]

For each method, at the default resolution, batch and backbone of
params.yaml:

* ``ceiling``: forward + backward + AdamW step of the bare backbone on
  normalised tensors already in memory, in views/s, at every view size the
  method uses (SwAV's small crops are smaller), with channels-last weights as
  training uses them (``bench/channels_last.py`` compares the layouts);
* ``ours``: training images/s of the stage's own code
  (:func:`cxrssl.pretraining.pretrain`): views made on the fly from the uint8
  store, heads, momentum encoders, queues, Sinkhorn, loss, clipping;
* ``cost_ratio``: our seconds per image over the ceiling's seconds for the
  views one image makes (2 for SimCLR, MoCo and BYOL; 2 global + n_local
  small for SwAV). The target is <= 1.1: views, heads and loss must not
  dominate. MoCo v2 back-propagates one view (its key goes through the
  momentum encoder, forward only) and BYOL adds its target network's forward
  passes, so ``work_ratio`` also divides by the ceiling's time for the backbone
  passes each method actually makes (forward-only passes timed on their own).
* with ``--lightly`` (needs ``make bench-setup``): the same figures for the
  lightly library's implementation of each method, as its documentation
  builds it: its transforms on PIL images in a DataLoader (one worker per
  core), its heads and losses, the same backbone, batch and resolution.

Recorded in bench/results.json under ``pretrain_throughput_<backbone>``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from bench._record import record
from cxrssl.data.store import ImageStore
from cxrssl.methods import build_method, config_class
from cxrssl.models import build_backbone
from cxrssl.params import from_dict
from cxrssl.pretraining import PretrainConfig, pretrain
from cxrssl.train import autocast

METHODS = ("moco", "simclr", "byol", "swav")


#: per method, the backbone passes one image costs: (view index, with backward); forward-only passes are
#: MoCo's key encoder and BYOL's target network (SwAV's views are listed by the method itself)
PASSES = {
    "simclr": [(0, True), (1, True)],
    "moco": [(0, True), (1, False)],
    "byol": [(0, True), (1, True), (0, False), (1, False)],
}


def ceiling(
    backbone_name: str,
    size: int,
    batch: int,
    steps: int,
    backward: bool = True,
    amp: bool = True,
    channels_last: bool = True,
) -> float:
    """Views/s of the bare backbone on in-memory tensors: forward + backward + AdamW step, or forward only.

    ``channels_last``: the weights in NHWC, as :func:`cxrssl.train.fit` trains them.
    """
    torch.manual_seed(0)
    backbone, _ = build_backbone(backbone_name)
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, size, size)
    device = torch.device("cpu")
    seconds = []
    for step in range(steps + 2):
        start = time.perf_counter()
        if backward:
            with autocast(device, amp):
                loss = backbone(x).float().pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad(), autocast(device, amp):
                backbone(x)
        if step >= 2:  # the first steps allocate and tune
            seconds.append(time.perf_counter() - start)
    return batch / float(np.median(seconds))


def ours(method: str, images: torch.Tensor, params: dict, steps: int) -> tuple[float, list[int]]:
    """Training images/s of the stage's code over ``steps`` steps, and the view sizes it uses."""
    config = from_dict(PretrainConfig, "pretrain.common", {**params["common"], "epochs": 1})
    method_config = from_dict(config_class(method), f"pretrain.{method}", params[method])
    subset = images[: config.batch_size * steps]
    _, _, summary = pretrain(method, subset, config, method_config, None, torch.device("cpu"))
    built = build_method(
        method, config.backbone, images.shape[-1], method_config, config.augment(), n_train=len(images)
    )
    return summary["images_per_s"], [view.size for view in built.views]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--train", type=Path, default=Path("data/splits/train.csv"))
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per method")
    parser.add_argument("--lightly", action="store_true", help="also time lightly's implementations")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--backbone", default=None, help="instead of params.yaml's pretrain.common.backbone")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())["pretrain"]
    if args.backbone:
        params["common"]["backbone"] = args.backbone
    batch, backbone = params["common"]["batch_size"], params["common"]["backbone"]
    rows = pd.read_csv(args.train, usecols=["row"])["row"].to_numpy()
    images = torch.from_numpy(ImageStore(args.store).load(rows))
    size = images.shape[-1]
    threads = torch.get_num_threads()
    print(f"{len(images)} images at {size} px, batch {batch}, {threads} threads")

    ceilings: dict[tuple[int, bool], float] = {}

    def seconds_per_view(size: int, backward: bool) -> float:
        if (size, backward) not in ceilings:
            ceilings[size, backward] = ceiling(backbone, size, batch, args.steps, backward)
            print(
                f"ceiling at {size} px, {'forward+backward' if backward else 'forward only'}: "
                f"{ceilings[size, backward]:.0f} views/s"
            )
        return 1 / ceilings[size, backward]

    results = {}
    for method in args.methods:
        rate, sizes = ours(method, images, params, args.steps)
        view_seconds = sum(seconds_per_view(s, True) for s in sizes)
        passes = PASSES.get(method, [(i, True) for i in range(len(sizes))])
        work_seconds = sum(seconds_per_view(sizes[i], backward) for i, backward in passes)
        results[method] = {
            "views": sizes,
            "ours_images_per_s": round(rate, 1),
            "ceiling_images_per_s": round(1 / view_seconds, 1),
            "cost_ratio": round((1 / rate) / view_seconds, 2),
            "backbone_passes": [[sizes[i], "fwd+bwd" if b else "fwd"] for i, b in passes],
            "work_ratio": round((1 / rate) / work_seconds, 2),
        }
        if args.lightly:
            from bench import lightly_methods

            torch.set_num_threads(threads)
            lightly_rate = lightly_methods.images_per_s(
                method, images.numpy(), params, args.steps, workers=os.cpu_count() or 1
            )
            results[method]["lightly_images_per_s"] = round(lightly_rate, 1)
            results[method]["lightly_cost_ratio"] = round((1 / lightly_rate) / view_seconds, 2)
            results[method]["lightly_work_ratio"] = round((1 / lightly_rate) / work_seconds, 2)
        print(method, results[method], flush=True)
    record(
        f"pretrain_throughput_{backbone}",
        {
            "size": size,
            "batch": batch,
            "backbone": backbone,
            "threads": threads,
            "ceiling_views_per_s": {
                f"{size}px_{'fwd+bwd' if b else 'fwd'}": round(v, 1) for (size, b), v in ceilings.items()
            },
            "methods": results,
        },
    )


if __name__ == "__main__":
    main()
