"""Where a class's maps peak when they miss: on another finding drawn in the same image, or on nothing drawn.

    python -m bench.gradcam_misses [init] [class]      (default: simclr Consolidation)

Uses the committed pipeline's outputs (the store, the splits, the classifiers
at ``gradcam.pct``) and the stage's own settings and code (``gradcam.method``,
``gradcam.layer``, the pointing game's tolerance). Results go to
bench/results.json under ``gradcam_misses``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from bench._record import record
from cxrssl.data.schema import CLASSES, REGIONS
from cxrssl.data.splits import read_split
from cxrssl.data.store import ImageStore
from cxrssl.finetune import load_classifier
from cxrssl.gradcam import GradcamConfig, box_mask, peaks, target_layer
from cxrssl.localisation import explain, read_regions
from cxrssl.params import load_section

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    init = sys.argv[1] if len(sys.argv) > 1 else "simclr"
    name = sys.argv[2] if len(sys.argv) > 2 else "Consolidation"
    config = load_section(GradcamConfig, "gradcam", REPO / "params.yaml")
    store = ImageStore(REPO / "data/preprocessed")
    test = read_split(REPO / "data/splits", "test", ["row", "Path", *CLASSES])
    regions = read_regions(REPO / "data/preprocessed" / REGIONS, test)
    k = CLASSES.index(name)
    positives = sorted(i for i, kk in regions if kk == k)
    model, _ = load_classifier(sorted((REPO / f"models/finetune/{init}-{config.pct}").glob("model-seed*.pt"))[0])
    layer = target_layer(model.backbone, config.layer)
    images = store.load(test["row"].to_numpy()[positives])
    size = store.size

    def grown(key) -> np.ndarray:
        return box_mask(regions[key], size, config.tolerance)

    where: Counter = Counter()
    probability = {"hit": [], "miss": []}
    for start, cams, probs in explain(model, layer, images, config.batch_size, config.method, [[k]] * len(positives)):
        for j, (r, c) in enumerate(peaks(cams[:, k], size).tolist()):
            i = positives[start + j]
            hit = bool(grown((i, k))[r, c]) and float(cams[j, k].max()) > 0
            probability["hit" if hit else "miss"].append(float(probs[j, k]))
            if hit:
                where["hit"] += 1
                continue
            others = sorted(CLASSES[kk] for (ii, kk) in regions if ii == i and kk != k and grown((ii, kk))[r, c])
            where["miss on " + (", ".join(others) or "nothing drawn")] += 1
    result = {
        "init": init,
        "class": name,
        "method": config.method,
        "layer": config.layer,
        "n": len(positives),
        "hits": where["hit"],
        "misses_on_nothing_drawn": where["miss on nothing drawn"],
        "misses_on_another_finding": len(positives) - where["hit"] - where["miss on nothing drawn"],
        "mean_probability_hit": round(float(np.mean(probability["hit"])), 3),
        "mean_probability_miss": round(float(np.mean(probability["miss"])), 3),
        "peaks": dict(where.most_common()),
    }
    record("gradcam_misses", result)
    print(result)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
