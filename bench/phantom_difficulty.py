"""How hard is the phantom task? Shallow baselines on the preprocessed store.

    python -m bench.phantom_difficulty [data/preprocessed] [data/splits]

For each class, val AUROC (test is not read) of (a) the image's mean brightness alone and
(b) logistic regression on 16x16-downsampled pixels trained on the full train
split. A good phantom set is not solved by (a) (no trivial global cue) nor
by (b) (it needs spatial features); the CNN stages must do better than both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from bench._record import record
from cxrssl.data.schema import CLASSES
from cxrssl.data.store import ImageStore
from cxrssl.metrics import auroc


def features(store: ImageStore, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = store.load(rows).astype(np.float32) / 255.0
    small = np.stack([cv2.resize(im, (16, 16), interpolation=cv2.INTER_AREA) for im in images])
    return images.mean(axis=(1, 2)), small.reshape(len(images), -1)


def main() -> None:
    store_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/preprocessed")
    split_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("data/splits")
    store = ImageStore(store_dir)
    train, val = (pd.read_csv(split_dir / f"{name}.csv") for name in ("train", "val"))
    train_mean, train_pix = features(store, train["row"].to_numpy())
    val_mean, val_pix = features(store, val["row"].to_numpy())
    mu, sd = train_pix.mean(0), train_pix.std(0) + 1e-6
    result = {}
    for name in CLASSES:
        y_train, y_val = train[name].to_numpy(), val[name].to_numpy()
        keep_train, keep_val = ~np.isnan(y_train), ~np.isnan(y_val)
        y_train, y_val = y_train[keep_train], y_val[keep_val]
        if len(np.unique(y_val)) < 2 or len(np.unique(y_train)) < 2:
            result[name] = None
            continue
        brightness = float(auroc(y_val, val_mean[keep_val], np.ones((1, len(y_val))))[0])
        model = LogisticRegression(C=0.05, max_iter=2000)
        model.fit((train_pix[keep_train] - mu) / sd, y_train)
        scores = model.decision_function((val_pix[keep_val] - mu) / sd)
        pixels = float(auroc(y_val, scores, np.ones((1, len(y_val))))[0])
        result[name] = {
            "brightness_auroc": round(max(brightness, 1 - brightness), 3),
            "pixel_logreg_auroc": round(pixels, 3),
            "val_positives": int(y_val.sum()),
        }
        print(
            f"{name:28s} brightness {result[name]['brightness_auroc']:.3f}  "
            f"16x16 logistic {result[name]['pixel_logreg_auroc']:.3f}  (val positives {int(y_val.sum())})"
        )
    scored = [v for v in result.values() if v]
    summary = {k: round(float(np.mean([v[k] for v in scored])), 3) for k in ("brightness_auroc", "pixel_logreg_auroc")}
    print("macro", summary)
    record("phantom_difficulty", {"macro": summary, "per_class": result})


if __name__ == "__main__":
    main()
