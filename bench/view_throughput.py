"""The input pipeline alone: images/s of each method's augmented views, against the rate training uses them.

    python -m bench.view_throughput [--steps 30]

Views are made on the training device from the uint8 store, in the training
process, exactly as :func:`cxrssl.pretraining.pretrain` makes them (load a
batch, to float, one :func:`cxrssl.views.make_view` per view). This times
that alone, per method, at the default resolution and batch; the training
rate is ``ours_images_per_s`` of ``pretrain_throughput_<backbone>`` in
bench/results.json. ``share_of_step`` is the fraction of a training step the
views take (the loader does not overlap with training on the CPU, so this
is what it costs). Recorded under ``view_throughput``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from bench._record import RESULTS, record
from cxrssl.data.store import ImageStore
from cxrssl.methods import build_method, config_class
from cxrssl.params import from_dict
from cxrssl.pretraining import PretrainConfig
from cxrssl.views import make_view, to_float

METHODS = ("moco", "simclr", "byol", "swav")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--train", type=Path, default=Path("data/splits/train.csv"))
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())["pretrain"]
    config = from_dict(PretrainConfig, "pretrain.common", params["common"])
    rows = pd.read_csv(args.train, usecols=["row"])["row"].to_numpy()
    images = torch.from_numpy(ImageStore(args.store).load(rows))
    training = json.loads(RESULTS.read_text()).get(f"pretrain_throughput_{config.backbone}", {}).get("methods", {})
    results = {}
    for name in METHODS:
        method_config = from_dict(config_class(name), f"pretrain.{name}", params[name])
        method = build_method(
            name, config.backbone, images.shape[-1], method_config, config.augment(), n_train=len(images)
        )
        generator = torch.Generator().manual_seed(0)
        seconds = []
        for step in range(args.steps + 2):
            start = time.perf_counter()
            order = torch.randint(0, len(images), (config.batch_size,), generator=generator)
            batch = to_float(images[order])
            [make_view(batch, spec, generator) for spec in method.views]
            if step >= 2:
                seconds.append(time.perf_counter() - start)
        rate = config.batch_size / float(np.median(seconds))
        trained = training.get(name, {}).get("ours_images_per_s")
        results[name] = {
            "views": [v.size for v in method.views],
            "images_per_s": round(rate, 1),
            "training_images_per_s": trained,
            "share_of_step": round(trained / rate, 3) if trained else None,
        }
        print(name, results[name], flush=True)
    record(
        "view_throughput",
        {
            "backbone": config.backbone,
            "size": int(images.shape[-1]),
            "batch": config.batch_size,
            "threads": torch.get_num_threads(),
            "methods": results,
        },
    )


if __name__ == "__main__":
    main()
