"""Representation quality: a linear probe on frozen features of each pretrained backbone.

    python -m bench.linear_probe [models/pretrain] [data/preprocessed] [data/splits]

For every ``<method>.pt`` and a randomly initialised backbone of the same
architecture: features of the train and val images (no augmentation), one
logistic regression per class on the 1%, 10% and 100% label subsets, and the
val macro AUROC over classes with both labels in val (cxrssl.metrics' AUROC; test is not read). Recorded in
bench/results.json. This is a quick check of the pretraining, not the study's
evaluation (that is the finetune/evaluate stages).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from bench._record import record
from cxrssl.data.schema import CLASSES
from cxrssl.data.splits import subset
from cxrssl.data.store import ImageStore
from cxrssl.finetune import backbone_features
from cxrssl.initial import load_initial
from cxrssl.metrics import auroc
from cxrssl.models import build_backbone


def features(backbone: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    return backbone_features(backbone, images, torch.device("cpu"), amp=True).numpy()


def probe(train_x, train_y, val_x, val_y) -> float:
    scores = []
    for k in range(train_y.shape[1]):
        keep_train, keep_val = ~np.isnan(train_y[:, k]), ~np.isnan(val_y[:, k])
        y_train, y_val = train_y[keep_train, k], val_y[keep_val, k]
        if len(np.unique(y_train)) < 2 or len(np.unique(y_val)) < 2:
            continue
        model = LogisticRegression(C=0.1, max_iter=1000, class_weight="balanced")
        model.fit(train_x[keep_train], y_train)
        scores.append(float(auroc(y_val, model.decision_function(val_x[keep_val]), np.ones((1, len(y_val))))[0]))
    return float(np.mean(scores))


def main() -> None:
    models = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models/pretrain")
    store = ImageStore(sys.argv[2] if len(sys.argv) > 2 else "data/preprocessed")
    splits = Path(sys.argv[3]) if len(sys.argv) > 3 else Path("data/splits")
    train, val = pd.read_csv(splits / "train.csv"), pd.read_csv(splits / "val.csv")
    train_images = torch.from_numpy(store.load(train["row"].to_numpy()))
    val_images = torch.from_numpy(store.load(val["row"].to_numpy()))
    val_y = val[list(CLASSES)].to_numpy(dtype=float)

    backbones = {}
    for path in sorted(models.glob("*.pt")):
        backbone, _, meta = load_initial(path)
        backbones[meta["method"]] = backbone
        name = meta["backbone_name"]
    if "random" not in backbones:  # the baseline stage's random.pt is this same seeded initialisation
        torch.manual_seed(0)
        backbones["random"], _ = build_backbone(name)

    result = {}
    for init, backbone in backbones.items():
        train_x, val_x = features(backbone, train_images), features(backbone, val_images)
        scaler = StandardScaler().fit(train_x)
        train_x, val_x = scaler.transform(train_x), scaler.transform(val_x)
        result[init] = {}
        for pct in (1, 10, 100):
            part = subset(train.assign(i=np.arange(len(train))), pct / 100)
            rows = part["i"].to_numpy()
            result[init][str(pct)] = round(
                probe(train_x[rows], part[list(CLASSES)].to_numpy(dtype=float), val_x, val_y), 4
            )
        print(init, result[init])
    record("linear_probe", {"macro_auroc_val": result, "images": {"train": len(train), "val": len(val)}})


if __name__ == "__main__":
    main()
