"""The committed run's classifiers, trained on the phantoms, scored on the 150 real NIH images in tests/data.

    python -m bench.cross_dataset            # after dvc repro; reruns evaluate (about a minute)

Runs ``dvc exp run -S evaluate.cross_dataset=...`` from the committed
params.yaml (only evaluate and report rerun), records
``results/cross_dataset.json`` in bench/results.json under
``cross_dataset_phantoms_to_nih_sample`` and puts the workspace back to the
committed run. The classes NIH labels are scored; NIH's test list is not used,
every sample image is a test image.
"""

from __future__ import annotations

import json

from bench._record import record
from bench.variants import REPO, exp_run, restore

DATASET = {
    "source": "nih",
    "root": "tests/data/nih-cxr14-sample",
    "train_csv": "Data_Entry_2017_subset.csv",
    "test_csv": "null",
    "skip_invalid": "false",
}
CHANGE = "evaluate.cross_dataset={" + ",".join(f"{k}:{v}" for k, v in DATASET.items()) + "}"


def main() -> None:
    try:
        ran = exp_run([CHANGE])
        scores = json.loads((REPO / "results/cross_dataset.json").read_text())
    finally:
        restore()
    record(
        "cross_dataset_phantoms_to_nih_sample",
        {
            "command": f"dvc exp run -S '{CHANGE}'",
            "note": "classifiers of the committed run (trained on phantoms) scored on the 150 real NIH images",
            "stages_run": ran,
            **scores,
        },
    )
    print(
        json.dumps(
            {
                init: {pct: c["auroc_macro"] for pct, c in cells.items()}
                for init, cells in scores.items()
                if init != "dataset"
            }
        )
    )


if __name__ == "__main__":
    main()
