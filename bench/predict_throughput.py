"""predict's throughput, from image files on disk to the CSV: 1024 px PNG, JPEG and DICOM, with and without maps.

    python -m bench.predict_throughput            # after dvc repro (uses the simclr-100 cell)

The 150 NIH images in tests/data, enlarged to 1,024 × 1,024 (the size of the
full NIH release), are written as 8-bit and 16-bit PNGs, as JPEGs (quality
95) and as DICOM (12 bits stored in 16, MONOCHROME1 with a window, as a DX
file is: uncompressed and RLE Lossless); ``python -m cxrssl.predict`` then
scores each set (median of 3 runs, on this machine's device), the 8-bit PNGs
once more with ``--cam`` (one map per image). Recorded in
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
from pydicom.uid import RLELossless

from bench._record import record
from cxrssl.predict import main as predict

REPO = Path(__file__).resolve().parents[1]
NIH = REPO / "tests/data/nih-cxr14-sample/images"
SIDE = 1024


FORMATS = ("png_8bit", "png_16bit", "jpeg", "dicom", "dicom_rle")


def write_set(folder: Path, kind: str) -> int:
    """The NIH sample at SIDE px in one of FORMATS."""
    from tests.test_dicom import dicom  # the tests' DX file builder

    folder.mkdir()
    files = sorted(NIH.glob("*.png"))
    for path in files:
        image = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
        if kind == "png_8bit":
            cv2.imwrite(str(folder / path.name), image)
        elif kind == "png_16bit":
            cv2.imwrite(str(folder / path.name), image.astype(np.uint16) * 257)
        elif kind == "jpeg":
            cv2.imwrite(str(folder / f"{path.stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        else:
            stored = (255 - image).astype(np.uint16) * 16  # MONOCHROME1, 12 bits
            ds = dicom(stored, "MONOCHROME1", WindowCenter=2048, WindowWidth=4096)
            if kind == "dicom_rle":
                ds.compress(RLELossless)
            ds.save_as(folder / f"{path.stem}.dcm", enforce_file_format=True)
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
        for kind in FORMATS:
            folder = Path(tmp) / kind
            n = write_set(folder, kind)
            result[f"{kind}_mb_on_disk"] = round(sum(p.stat().st_size for p in folder.iterdir()) / 1e6, 1)
            out = ["--out", str(Path(tmp) / "p.csv")]
            result[f"{kind}_images_per_s"] = rate([model, str(folder), *out, *common], n)
            if kind == "png_8bit":
                cam = ["--cam", str(Path(tmp) / "maps")]
                result["png_8bit_with_cam_images_per_s"] = rate([model, str(folder), *out, *cam, *common], n)
        result["images"] = n
    print(result)
    record("predict_throughput", result)


if __name__ == "__main__":
    main()
