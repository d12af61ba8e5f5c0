"""How long the split code takes on the full real CheXpert label table (223,414 rows).

python -m bench.split_real_table [tests/data/chexpert/train_labels.csv.gz]
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from bench._record import record
from cxrssl.data.chexpert import Report, read_table
from cxrssl.data.splits import SplitConfig, make_splits
from cxrssl.params import from_dict, read_params

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "tests/data/chexpert/train_labels.csv.gz"


def main() -> None:
    table_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    start = time.perf_counter()
    table = read_table(table_path, Report()).assign(origin="train")
    read_s = time.perf_counter() - start
    split = from_dict(SplitConfig, "split", read_params(REPO / "params.yaml")["split"])
    timings = {}
    for policy in ("zeros", "ones", "ignore"):
        start = time.perf_counter()
        splits, summary = make_splits(table, replace(split, uncertainty=policy), [1, 10, 100])
        timings[policy] = round(time.perf_counter() - start, 2)
    result = {
        "rows": len(table),
        "read_and_validate_s": round(read_s, 2),
        "split_s": timings,
        "train_val_test_images": [summary[s]["n_images"] for s in ("train", "val", "test")],
        "classes_without_positive_at_1pct": summary["label_fractions"]["1"]["classes_without_positive"],
    }
    record("split_real_table", result)
    print(result)


if __name__ == "__main__":
    main()
