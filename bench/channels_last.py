"""Memory layout of the weights in training: NCHW (PyTorch's default) against channels-last (NHWC).

    python -m bench.channels_last [--rounds 4] [--steps 40]

The bare backbone's forward + backward + AdamW step under autocast, at the
default backbone, resolution and pretraining batch of params.yaml, in
views/s. The two layouts alternate for ``--rounds`` rounds (this machine's
speed drifts over minutes, so one measurement of each would mostly measure
the drift); the medians are recorded in bench/results.json under
``channels_last``. :func:`cxrssl.train.fit` trains in channels-last.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml

from bench._record import record
from bench.pretrain_throughput import ceiling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    backbone = params["pretrain"]["common"]["backbone"]
    batch = params["pretrain"]["common"]["batch_size"]
    size = params["preprocess"]["size"]
    rates: dict[str, list[float]] = {"nchw": [], "channels_last": []}
    for round_ in range(args.rounds):
        for layout in rates:
            rates[layout].append(ceiling(backbone, size, batch, args.steps, channels_last=layout == "channels_last"))
            print(f"round {round_ + 1}: {layout}: {rates[layout][-1]:.0f} views/s", flush=True)
    medians = {layout: round(float(np.median(v)), 1) for layout, v in rates.items()}
    speedup = round(medians["channels_last"] / medians["nchw"], 2)
    print(f"median views/s {medians}; channels-last {speedup}x")
    record(
        "channels_last",
        {
            "backbone": backbone,
            "size": size,
            "batch": batch,
            "threads": torch.get_num_threads(),
            "steps": args.steps,
            "rounds": args.rounds,
            "views_per_s": rates,
            "median_views_per_s": medians,
            "speedup": speedup,
        },
    )


if __name__ == "__main__":
    main()
