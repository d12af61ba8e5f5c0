"""export: ONNX and TorchScript give the PyTorch model's probabilities, and the card says what the model is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch

from cxrssl.data.images import load_and_preprocess
from cxrssl.data.schema import CLASSES
from cxrssl.errors import CxrsslError, ParamError
from cxrssl.export import main
from cxrssl.finetune import predict
from tests.test_predict import NIH, preprocessing, write_model


def results_folder(tmp_path: Path) -> Path:
    """evaluate's per-class table for the simclr-10 cell, as the report stage keeps it."""
    folder = tmp_path / "results"
    folder.mkdir()
    rows = [{"init": "simclr", "pct": 10, "class": c, "threshold": 0.25, "auroc": 0.7} for c in CLASSES]
    pd.DataFrame(rows).assign(auroc_low=0.6, auroc_high=0.8).to_csv(folder / "evaluate_per_class.csv", index=False)
    return folder


def run_files(tmp_path: Path) -> list[str]:
    """A run of the study in ``tmp_path``: its cells, results, and no dvc.lock or split metrics."""
    return [
        *("--finetune", str(tmp_path / "finetune"), "--results", str(results_folder(tmp_path))),
        *("--lock", str(tmp_path / "dvc.lock"), "--split", str(tmp_path / "split.json")),
    ]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")  # LibTorch still reads it
def test_the_exports_agree_with_pytorch_on_the_nih_sample_and_carry_a_card(tmp_path):
    config = preprocessing()
    model = write_model(tmp_path / "finetune/simclr-10/model-seed0.pt", config, source="phantoms")
    out = tmp_path / "exported"
    main(["simclr-10", "--out", str(out), *run_files(tmp_path), "--check-limit", "12"])
    assert sorted(p.name for p in out.iterdir()) == [
        "MODEL_CARD.md",
        "agreement.json",
        "model.json",
        "model.onnx",
        "model.ts",
    ]
    # independently of the export's own check: images read as predict reads them, other images than the check's
    files = sorted(NIH.glob("*.png"))[-20:]
    images = np.stack([load_and_preprocess(p, config) for p in files])
    expected = predict(model, torch.from_numpy(images), torch.device("cpu"), amp=False)
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(["probabilities"], {"images": images})[0] - expected).max() < 1e-4
    scripted = torch.jit.load(str(out / "model.ts"))
    with torch.no_grad():
        assert np.abs(scripted(torch.from_numpy(images)).numpy() - expected).max() < 1e-4
    check = json.loads((out / "agreement.json").read_text())
    assert check["images"] == 12 and check["onnx_max_abs_difference"] < 1e-4

    meta = json.loads((out / "model.json").read_text())
    assert meta["classes"] == list(CLASSES) and meta["preprocess"]["image_size"] == 32
    assert meta["thresholds"] == dict.fromkeys(CLASSES, 0.25)
    card = (out / "MODEL_CARD.md").read_text()
    assert "Research use only" in card and "Trained on generated phantoms" in card
    assert "| Edema | 0.250 | – | 0.700 [0.600, 0.800] |" in card


def test_an_export_that_disagrees_beyond_the_tolerance_writes_nothing(tmp_path):
    write_model(tmp_path / "model.pt", preprocessing())
    out = tmp_path / "exported"
    with pytest.raises(CxrsslError, match=r"differ from PyTorch by up to .* more than --tolerance 1e-15"):
        main([str(tmp_path / "model.pt"), "--out", str(out), "--check-limit", "12", "--tolerance", "1e-15"])
    assert not out.exists()
    card_free = tmp_path / "plain"
    main([str(tmp_path / "model.pt"), "--out", str(card_free), "--check-limit", "1", "--results", str(tmp_path)])
    card = (card_free / "MODEL_CARD.md").read_text()
    assert "No evaluation of this cell was found" in card and "Trained on generated phantoms" not in card
    with pytest.raises(ParamError, match="--check .*nowhere: no such folder"):
        main([str(tmp_path / "model.pt"), "--out", str(tmp_path / "x"), "--check", str(tmp_path / "nowhere")])


def test_the_card_reads_the_run_only_for_a_cell_of_the_run(tmp_path, capsys):
    """A model file from elsewhere gets no hashes or metrics of this repository's run, only its own metadata."""
    write_model(tmp_path / "finetune/simclr-10/model-seed0.pt", preprocessing())
    write_model(tmp_path / "elsewhere/model.pt", preprocessing())
    common = [*run_files(tmp_path), "--check-limit", "2"]
    main(["simclr-10", "--out", str(tmp_path / "cell"), *common])
    assert "| Edema | 0.250 |" in (tmp_path / "cell/MODEL_CARD.md").read_text()
    main([str(tmp_path / "elsewhere/model.pt"), "--out", str(tmp_path / "other"), *common])
    assert "No evaluation of this cell was found" in (tmp_path / "other/MODEL_CARD.md").read_text()
    assert "is not a cell of" in capsys.readouterr().err
