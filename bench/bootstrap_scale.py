"""The evaluate stage's patient bootstrap at CheXpert-like sizes: time and peak memory, in blocks and at once.

    python -m bench.bootstrap_scale [--images 20000 200000] [--resamples 1000]

Scores one cell (one seed, 14 classes, 3.4 images per patient, random
labels and scores) with :func:`cxrssl.evaluation.evaluate_cell` on a val and
a test set of ``--images`` images each, once with the resamples scored
:data:`cxrssl.evaluation.BLOCK` at a time (the stage's way) and once with
all of them in one block, and checks that both give the same numbers. Peak
memory is what numpy allocated (``tracemalloc``). Recorded in
bench/results.json under ``bootstrap_scale``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import pandas as pd

import cxrssl.evaluation as evaluation
from bench._record import record
from cxrssl.data.schema import CLASSES
from cxrssl.params import from_dict


def split(n: int, offset: int, rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.DataFrame((rng.random((n, len(CLASSES))) < 0.2).astype(float), columns=list(CLASSES))
    frame.insert(0, "row", np.arange(n) + offset)
    frame.insert(1, "patient", (np.arange(n) + offset) * 10 // 34)
    return frame


def predictions(val: pd.DataFrame, test: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    parts = []
    for name, frame in (("val", val), ("test", test)):
        scores = frame[list(CLASSES)].to_numpy() * 0.3 + rng.random((len(frame), len(CLASSES)))
        part = pd.DataFrame(scores, columns=[f"score:{c}" for c in CLASSES])
        part.insert(0, "split", name)
        part.insert(1, "seed", 0)
        part.insert(2, "row", frame["row"].to_numpy())
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def measure(n: int, resamples: int, block: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    val, test = split(n, 0, rng), split(n, n, rng)
    frame = predictions(val, test, rng)
    config = from_dict(
        evaluation.EvaluateConfig,
        "evaluate",
        {"bootstrap": resamples, "confidence": 0.95, "seed": 0, "cross_dataset": None},
    )
    evaluation.BLOCK = block
    tracemalloc.start()
    start = time.perf_counter()
    summary, _ = evaluation.evaluate_cell(frame, val, test, config)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": round(seconds, 1), "peak_gib": round(peak / 2**30, 2)}, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, nargs="*", default=[20_000, 200_000])
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    blocked_size = evaluation.BLOCK
    results = {}
    for n in args.images:
        blocked, a = measure(n, args.resamples, blocked_size)
        whole, b = measure(n, args.resamples, args.resamples)
        if a != b:
            raise SystemExit(f"{n} images: the blocked and whole bootstraps differ")
        results[str(n)] = {f"blocks_of_{blocked_size}": blocked, "one_block": whole}
        print(f"{n} images (val and test each), {args.resamples} resamples: blocks {blocked}, at once {whole}")
    record("bootstrap_scale", {"resamples": args.resamples, "images_per_split": results})


if __name__ == "__main__":
    main()
