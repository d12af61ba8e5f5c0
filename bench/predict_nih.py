"""The committed run's classifiers through predict on the NIH sample, and export's agreement with PyTorch.

    python -m bench.predict_nih            # after dvc repro

For every cell of the run: ``python -m cxrssl.predict <cell>
tests/data/nih-cxr14-sample/Data_Entry_2017_subset.csv`` (150 real NIH
radiographs, NIH's labels with U-Ignore), the macro AUROC over the findings
NIH labels and each finding's AUROC, as predict prints them. Then ``python -m
cxrssl.export simclr-100`` and its agreement.json: the largest difference in
probability between PyTorch and ONNX Runtime, and TorchScript, on the 150
images. Recorded in bench/results.json under ``predict_nih``. The models were
trained on phantoms: these figures say what such a model does with real
radiographs, nothing about radiology.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import redirect_stderr
from io import StringIO
from pathlib import Path

import numpy as np
import yaml

from bench._record import record
from cxrssl.export import main as export
from cxrssl.predict import main as predict

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "tests/data/nih-cxr14-sample/Data_Entry_2017_subset.csv"


def main() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    common = ["--finetune", str(REPO / "models/finetune"), "--thresholds", str(REPO / "results/evaluate_per_class.csv")]
    cells: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for init in params["inits"]:
            for pct in params["label_percents"]:
                out = Path(tmp) / f"{init}-{pct}.csv"
                with redirect_stderr(StringIO()):
                    predict([f"{init}-{pct}", str(TABLE), "--out", str(out), *common])
                cells[f"{init}-{pct}"] = per_class(out)
        with redirect_stderr(StringIO()):
            export(["simclr-100", "--out", str(Path(tmp) / "export"), "--finetune", str(REPO / "models/finetune")])
        agreement = json.loads((Path(tmp) / "export/agreement.json").read_text())
    result = {
        "command": "python -m cxrssl.predict <cell> tests/data/nih-cxr14-sample/Data_Entry_2017_subset.csv --out x.csv",
        "note": "classifiers trained on phantoms, scored through predict (fp32) on 150 real NIH radiographs",
        "macro_auroc": {cell: round(float(np.mean(list(v.values()))), 3) for cell, v in cells.items()},
        "auroc_per_class": {cell: {k: round(a, 3) for k, a in v.items()} for cell, v in cells.items()},
        "export_simclr_100": agreement,
    }
    print(json.dumps(result["macro_auroc"]), json.dumps(agreement))
    record("predict_nih", result)


def per_class(predictions: Path) -> dict[str, float]:
    """{finding: AUROC} over the findings the table labels, as predict prints them."""
    import pandas as pd

    from cxrssl.predict import label_auroc

    return label_auroc(pd.read_csv(predictions))


if __name__ == "__main__":
    main()
