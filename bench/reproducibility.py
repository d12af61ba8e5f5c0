"""Which step makes two machines give different numbers for the same seed, and by how much.

    python -m bench.reproducibility            # after dvc repro (reads the phantom zip, the store and the splits)

Runs the same work in fresh processes that differ only in what differs
between machines, emulated on this one: the instruction sets oneDNN may use
(``ONEDNN_MAX_CPU_ISA``: AVX2 is a machine without AVX-512 or AMX), ATen's
own vector kernels (``ATEN_CPU_CAPABILITY``), libjpeg-turbo's SIMD
(``JSIMD_FORCENONE``), OpenCV's optimised kernels
(``OPENCV_CPU_DISABLE``), and the number of threads. Each process reports:

* ``store``: a hash of 300 phantom images decoded and resized as preprocess does;
* ``pretrain``: MoCo v2's and SimCLR's mean loss over 5 steps
  (the stage's own code and settings, one epoch of 640 images);
* ``linear``: the val macro AUROC of a linear probe (the finetune stage's
  linear protocol) on the committed random backbone at 10% of the labels.

Recorded in bench/results.json under ``reproducibility``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from bench._record import record

REPO = Path(__file__).resolve().parents[1]

VARIANTS = {
    "this machine": {},
    "oneDNN without AVX-512/AMX": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "ATen kernels AVX2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "libjpeg-turbo without SIMD": {"JSIMD_FORCENONE": "1"},
    "OpenCV without AVX2/AVX-512": {"OPENCV_CPU_DISABLE": "AVX512_SKX,AVX2,FMA3"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}


def work() -> dict:
    """The measurements of one process (run with ``--work``)."""
    import numpy as np
    import pandas as pd
    import torch

    from cxrssl.data import archive
    from cxrssl.data.images import PreprocessConfig, load_and_preprocess
    from cxrssl.data.splits import read_split, subset
    from cxrssl.data.store import ImageStore
    from cxrssl.finetune import FinetuneConfig, finetune
    from cxrssl.initial import load_initial
    from cxrssl.methods import config_class
    from cxrssl.params import from_dict, read_params
    from cxrssl.pretraining import PretrainConfig, pretrain

    params = read_params(REPO / "params.yaml")
    root = archive.dataset_root(REPO / params["data"]["root"], "train.csv")
    table = pd.read_csv(archive.open_binary(root / "train.csv"))
    preprocess = from_dict(PreprocessConfig, "preprocess", params["preprocess"])
    digest = hashlib.sha256()
    for path in table["Path"][:300]:
        digest.update(load_and_preprocess(root / path.split("/", 1)[1], preprocess).tobytes())

    store = ImageStore(REPO / "data/preprocessed")
    rows = read_split(REPO / "data/splits", "pretrain", ["row"])["row"].to_numpy()
    images = torch.from_numpy(store.load(rows[:640]))
    common = from_dict(PretrainConfig, "pretrain.common", params["pretrain"]["common"])
    losses = {}
    for method in ("moco", "simclr"):
        config = from_dict(config_class(method), f"pretrain.{method}", params["pretrain"][method])
        _, history, _ = pretrain(method, images, replace(common, epochs=1), config, None, torch.device("cpu"))
        losses[method] = history[0]["loss"]

    train = read_split(REPO / "data/splits", "train", ["row", "min_fraction", *params_classes()])
    val = read_split(REPO / "data/splits", "val", ["row", *params_classes()])
    part = subset(train, 0.1)
    backbone, dim, _ = load_initial(REPO / "models/pretrain/random.pt")
    settings = from_dict(FinetuneConfig, "finetune", params["finetune"])
    _, _, summary = finetune(
        backbone,
        dim,
        torch.from_numpy(store.load(part["row"].to_numpy())),
        part[params_classes()].to_numpy(dtype=float),
        torch.from_numpy(store.load(val["row"].to_numpy())),
        val[params_classes()].to_numpy(dtype=float),
        settings,
        "linear",
        0,
        torch.device("cpu"),
    )
    return {
        "store": digest.hexdigest()[:16],
        "pretrain_loss_5_steps": losses,
        "linear_val_auroc": round(float(summary["val_auroc_macro"]), 6),
        "threads": torch.get_num_threads(),
        "numpy": np.__version__,
    }


def params_classes() -> list[str]:
    from cxrssl.data.schema import CLASSES

    return list(CLASSES)


def main() -> None:
    if "--work" in sys.argv:
        print(json.dumps(work()))
        return
    out = {}
    for name, env in VARIANTS.items():
        result = subprocess.run(
            [sys.executable, "-m", "bench.reproducibility", "--work"],
            cwd=REPO,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        out[name] = {"env": env, **json.loads(result.stdout.strip().splitlines()[-1])}
        print(name, out[name], flush=True)
    base = out["this machine"]
    for result in out.values():
        result["store_identical"] = result["store"] == base["store"]
        result["pretrain_loss_change"] = {
            m: float(f"{result['pretrain_loss_5_steps'][m] - v:.3g}") for m, v in base["pretrain_loss_5_steps"].items()
        }
        result["linear_val_auroc_change"] = round(result["linear_val_auroc"] - base["linear_val_auroc"], 6)
    record("reproducibility", out)


if __name__ == "__main__":
    main()
