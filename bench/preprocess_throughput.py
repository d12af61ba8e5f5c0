"""Preprocess throughput (images/s) on this machine, against a naive one-image-at-a-time PIL loop.

    python -m bench.preprocess_throughput [phantom_root] [nih_folder]

Phantom JPEGs come from the phantoms stage's output, read in place from its
zip archive as the stage does (run ``dvc repro phantoms`` first); the real
images are the 150 NIH ChestX-ray14 PNGs (256 px) in tests/data/nih-cxr14-sample. Results go to bench/results.json.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bench._record import record
from cxrssl.data import archive
from cxrssl.data.chexpert import resolve_image
from cxrssl.data.images import PreprocessConfig
from cxrssl.data.writer import build_store
from cxrssl.params import from_dict, read_params

REPO = Path(__file__).resolve().parents[1]
#: params.yaml's preprocessing; each figure changes only the size (and, for one, the filters)
BASE = from_dict(PreprocessConfig, "preprocess", read_params(REPO / "params.yaml")["preprocess"])
PHANTOMS = REPO / "data/phantoms/CheXpert-v1.0-small.zip"
NIH = REPO / "tests/data/nih-cxr14-sample/images"


def naive_pil(files: list[str], size: int) -> float:
    """The baseline: open, convert, resize and keep each image in a plain Python loop."""
    start = time.perf_counter()
    out = np.empty((len(files), size, size), np.uint8)
    for i, file in enumerate(files):
        with archive.open_binary(file) as handle, Image.open(handle) as image:
            out[i] = np.asarray(image.convert("L").resize((size, size), Image.BILINEAR))
    return len(files) / (time.perf_counter() - start)


def pool_start_s(workers: int) -> float:
    """Seconds to start the stage's process pool (included in every store figure)."""
    from cxrssl.data.writer import _init_worker
    from cxrssl.parallel import process_pool

    start = time.perf_counter()
    with process_pool(workers, _init_worker, (BASE,)) as pool:
        pool.map(abs, range(workers))
    return time.perf_counter() - start


def store_rate(files: list[str], config: PreprocessConfig, workers: int, repeats: int = 2) -> float:
    """Best of ``repeats`` runs of the preprocess stage's own code path (images/s)."""
    best = 0.0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            ok, _ = build_store(files, Path(tmp), config, workers, skip_bad=False, progress=False)
            best = max(best, ok.sum() / (time.perf_counter() - start))
    return best


def measure(name: str, files: list[str]) -> dict:
    result: dict = {"images": len(files)}
    for size in (64, 224):
        plain = replace(BASE, image_size=size)
        rates = {
            "store_2_workers": store_rate(files, plain, 2),
            "store_1_worker": store_rate(files, plain, 1),
            "store_2_workers_median_clahe": store_rate(
                files, replace(BASE, image_size=size, denoise="median", clahe=True), 2
            ),
            "naive_pil_loop": naive_pil(files, size),
        }
        result[f"{size}px"] = {key: round(float(value), 1) for key, value in rates.items()}
    print(name, result)
    return result


def main() -> None:
    phantom_root = archive.dataset_root(Path(sys.argv[1]) if len(sys.argv) > 1 else PHANTOMS)
    nih = Path(sys.argv[2]) if len(sys.argv) > 2 else NIH
    with archive.open_binary(phantom_root / "train.csv") as handle:
        table = pd.read_csv(handle).head(3000)
    phantom_files = [str(resolve_image(phantom_root, p)) for p in table["Path"]]
    nih_files = sorted(str(p) for p in nih.glob("*.png")) * 20  # 3,000 decodes of the 150 files
    record(
        "preprocess_throughput",
        {
            "pool_start_s_2_workers": round(pool_start_s(2), 2),
            "phantom_jpeg_320x384": measure("phantoms", phantom_files),
            "nih_png_256": measure("nih", nih_files),
        },
    )


if __name__ == "__main__":
    main()
