"""predict's throughput, from image files on disk to the CSV: 1024 px PNGs, 8- and 16-bit, with and without maps.

    python -m bench.predict_throughput            # after dvc repro (uses the simclr-100 cell)

The 150 NIH images in tests/data, enlarged to 1,024 × 1,024 (the size of the
full NIH release), are written as 8-bit and as 16-bit PNGs; ``python -m
cxrssl.predict`` then scores each set (median of 3 runs, on this machine's
device), once more with ``--cam`` (one map per image). Recorded in
bench/results.json under ``predict_throughput``. Run it with nothing else on
the machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import cv2
import numpy as np

from bench._record import record
from cxrssl.predict import main as predict

REPO = Path(__file__).resolve().parents[1]
NIH = REPO / "tests/data/nih-cxr14-sample/images"
SIDE = 1024


def write_set(folder: Path, bits: int) -> int:
    folder.mkdir()
    files = sorted(NIH.glob("*.png"))
    for path in files:
        image = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
        if bits == 16:
            image = image.astype(np.uint16) * 257
        cv2.imwrite(str(folder / path.name), image)
    return len(files)


def rate(args: list[str], n: int, repeats: int = 3) -> float:
    """Median images/s of ``predict`` with ``args``, quiet."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        with redirect_stdout(StringIO()), redirect_stderr(StringIO()):
            predict(args)
        runs.append(n / (time.perf_counter() - start))
    return round(statistics.median(runs), 1)


def main() -> None:
    model = "simclr-100"
    common = ["--finetune", str(REPO / "models/finetune"), "--thresholds", str(REPO / "results/evaluate_per_class.csv")]
    result = {"model": model, "side_px": SIDE}
    with tempfile.TemporaryDirectory() as tmp:
        for bits in (8, 16):
            folder = Path(tmp) / f"png{bits}"
            n = write_set(folder, bits)
            out = ["--out", str(Path(tmp) / "p.csv")]
            result[f"png_{bits}bit_images_per_s"] = rate([model, str(folder), *out, *common], n)
            if bits == 8:
                cam = ["--cam", str(Path(tmp) / "maps")]
                result["png_8bit_with_cam_images_per_s"] = rate([model, str(folder), *out, *cam, *common], n)
        result["images"] = n
    print(result)
    record("predict_throughput", result)


if __name__ == "__main__":
    main()
