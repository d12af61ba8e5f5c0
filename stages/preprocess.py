"""Stage ``preprocess``: decode, resize, denoise and equalise every image once into a uint8 store.

python -m stages.preprocess data/preprocessed metrics/preprocess.json
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import pandas as pd

from cxrssl.cli import run, stage_parser
from cxrssl.data.archive import dataset_root, exists, read_bytes
from cxrssl.data.chexpert import Report
from cxrssl.data.images import PreprocessConfig
from cxrssl.data.schema import COLUMNS, REGION_COLUMNS, REGIONS
from cxrssl.data.sources import DataConfig, read_source
from cxrssl.data.store import INDEX, REPORT
from cxrssl.data.writer import build_store
from cxrssl.errors import DataError
from cxrssl.io import atomic_dir, write_csv, write_json
from cxrssl.params import from_dict, read_params

INDEX_COLUMNS = ["row", *COLUMNS, "patient", "study", "origin"]


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(
        "Preprocess every image once into a uint8 store.",
        {
            "out": "the store folder to create",
            "metrics": "where to write the stage's metrics (JSON)",
        },
    )
    args = parser.parse_args(argv)
    params = read_params(args.params)
    data = from_dict(DataConfig, "data", params.get("data"))
    config = from_dict(PreprocessConfig, "preprocess", params.get("preprocess"))

    report = Report(skip=data.skip_invalid, max_bytes=config.max_file_bytes)
    frame = read_source(data, report)
    regions_file = dataset_root(data.root, data.train_csv) / REGIONS  # ground-truth boxes (the phantoms have them)
    try:
        regions = read_bytes(regions_file) if exists(regions_file) else None
    except OSError as error:
        raise DataError(f"{regions_file}: cannot read it ({error.strerror})") from None
    rows_skipped = len(report.problems)
    start = time.perf_counter()
    with atomic_dir(args.out) as tmp:
        listed_in = [f"{table}, line {line}" for table, line in zip(frame["table"], frame["line"])]
        ok, problems = build_store(
            frame["file"].tolist(), tmp, config, config.workers, data.skip_invalid, listed_in=listed_in
        )
        report.problems.extend(problems)
        if not ok.any():
            raise DataError(f"{data.root}: no image could be read (the first problem: {problems[0]})")
        index = frame.assign(row=np.arange(len(frame)))[ok][INDEX_COLUMNS]
        write_csv(tmp / INDEX, index)
        if regions is not None:
            (tmp / REGIONS).write_bytes(regions)
        else:
            write_csv(tmp / REGIONS, pd.DataFrame(columns=list(REGION_COLUMNS)))
        # no timings in the store (a cached output) or the metrics: both would differ on every run
        write_json(tmp / REPORT, {"preprocess": asdict(config), "data": asdict(data), **report.as_dict()})
        metrics = {
            "n_images": int(ok.sum()),
            "n_rows_skipped": rows_skipped,
            "n_images_skipped": len(problems),
            "image_size": config.image_size,
        }
        write_json(args.metrics, metrics)
    seconds = time.perf_counter() - start
    print(
        f"preprocess: {metrics['n_images']} images at {config.image_size} px in {seconds:.1f} s "
        f"({len(frame) / seconds:.0f} images/s); skipped {rows_skipped} rows and {len(problems)} images"
    )
    for problem in report.problems[:5]:
        print(f"  skipped: {problem}")


if __name__ == "__main__":
    run(main, "preprocess")
