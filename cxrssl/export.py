"""Export a classifier from the study: ONNX, TorchScript, and its model card.

    python -m cxrssl.export simclr-100 --out exported/simclr-100
    cxrssl-export simclr-100 --out exported/simclr-100      # the same, as installed by pip

The model is named as :mod:`cxrssl.predict` names it (a finetune cell, its
``--seed``, or a model file). The folder gets, all or nothing:

* ``model.onnx`` (the ``torch.export``-based exporter) and ``model.ts``
  (TorchScript, traced): one function, ``images`` uint8 (N, S, S) as the
  study's store keeps them (read and preprocessed as ``model.json`` says) to
  ``probabilities`` (N, 14), the sigmoid of each class. Normalisation is
  inside the function, so a consumer only resizes, denoises and equalises.
* ``model.json``: what a consumer needs to use it: classes, image size,
  preprocessing, thresholds chosen on val, provenance and metrics.
* ``MODEL_CARD.md``: the same for a reader (see :func:`model_card`).
* ``agreement.json``: the largest difference between the PyTorch model's
  probabilities and each export's, on the check images (``--check``: by
  default, in this repository, the NIH sample kept with the tests). An export that differs by more
  than ``--tolerance`` is an error, and nothing is written.

Where the model is a cell of this repository's run (``--finetune``), the
card reads the run's record: ``dvc.lock`` (the hashes of the data, splits and backbone the cell was
trained from), ``metrics/split.json`` (label policy and counts) and
``results/`` (val and test metrics with their intervals, thresholds).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from cxrssl.cli import run
from cxrssl.data.images import PreprocessConfig, load_and_preprocess
from cxrssl.errors import CxrsslError, DataError, ParamError
from cxrssl.finetune import Classifier, load_classifier
from cxrssl.io import atomic_dir, write_json
from cxrssl.params import from_dict
from cxrssl.predict import images_in, model_file
from cxrssl.views import normalize, to_float

#: Where the check images are by default: 150 NIH ChestX-ray14 radiographs kept with the tests.
NIH_SAMPLE = Path(__file__).resolve().parent.parent / "tests/data/nih-cxr14-sample/images"
ONNX_OPSET = 18

UNCERTAINTY = {"zeros": "U-Zeros (uncertain = negative)", "ones": "U-Ones (uncertain = positive)"}
UNCERTAINTY["ignore"] = "U-Ignore (uncertain labels masked from the loss)"


class Deployed(torch.nn.Module):
    """The classifier as a function of stored pixels: uint8 (N, S, S) -> probabilities (N, classes)."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.classifier(normalize(to_float(images))))


def export_onnx(module: Deployed, example: torch.Tensor, path: Path) -> None:
    """ONNX through ``torch.export`` (PyTorch's exporter since 2.9), with a free batch dimension."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's progress chatter is printed as warnings
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_shapes={"images": {0: batch}},
            opset_version=ONNX_OPSET,
            verbose=False,
        )
    program.save(str(path))


def export_torchscript(module: Deployed, example: torch.Tensor, path: Path) -> None:
    """TorchScript by tracing (no control flow depends on the input). PyTorch calls it deprecated; LibTorch reads it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(str(path))


def check_images(folder: Path, preprocess: PreprocessConfig, limit: int) -> np.ndarray:
    """Up to ``limit`` images of ``folder``, prepared as the model's training images were: (N, S, S) uint8."""
    if not folder.is_dir():
        raise ParamError(f"--check {folder}: no such folder; give a folder of radiographs to compare the exports on")
    files = images_in(folder)[:limit]
    if not files:
        raise DataError(f"--check {folder}: no PNG, JPEG or DICOM images to compare the exports on")
    return np.stack([load_and_preprocess(p, preprocess) for p in files])


def agreement(module: Deployed, onnx_path: Path, ts_path: Path, images: np.ndarray) -> dict:
    """The largest |p_export - p_pytorch| of each export, over every image and class."""
    import onnxruntime  # here: only exporting needs it

    tensor = torch.from_numpy(images)
    with torch.no_grad():
        reference = module(tensor).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated": LibTorch still reads it
            scripted = torch.jit.load(str(ts_path))(tensor).numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx = session.run(["probabilities"], {"images": images})[0]
    return {
        "images": len(images),
        "onnx_max_abs_difference": float(np.abs(onnx - reference).max()),
        "torchscript_max_abs_difference": float(np.abs(scripted - reference).max()),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__.split("+")[0],
    }


def run_record(cell: str, lock: Path, split: Path, results: Path) -> dict:
    """What this repository's run says of the cell: hashes from dvc.lock, split facts, metrics and thresholds."""
    record: dict = {}
    if lock.is_file():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        entry = stages.get(f"finetune@{cell}")
        if entry:
            record["inputs"] = {
                d["path"]: d.get("md5") for d in entry.get("deps", []) if d["path"].startswith(("data/", "models/"))
            }
            record["finetune_params"] = entry.get("params", {}).get("params.yaml", {})
        source = stages.get("preprocess", {}).get("deps", [])
        record["dataset_files"] = {d["path"]: d.get("md5") for d in source if d["path"].startswith("data/")}
    if split.is_file():
        facts = json.loads(split.read_text())
        record["split"] = {k: facts.get(k) for k in ("uncertainty", "frontal_only", "label_fractions")}
        record["split"]["train"] = {k: v for k, v in facts.get("train", {}).items() if k != "classes"}
    init, pct = cell.rsplit("-", 1)
    evaluation = results / "evaluate.json"
    if evaluation.is_file():
        record["metrics"] = json.loads(evaluation.read_text()).get(init, {}).get(pct)
    per_class = results / "evaluate_per_class.csv"
    if per_class.is_file():
        frame = pd.read_csv(per_class)
        rows = frame[(frame["init"] == init) & (frame["pct"] == int(pct))]
        record["per_class"] = json.loads(rows.drop(columns=["init", "pct"]).to_json(orient="records"))
    return record


def _interval(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.3f} [{row[key + '_low']:.3f}, {row[key + '_high']:.3f}]"


def model_card(meta: dict, model: str, record: dict, check: dict) -> str:
    """The model card (Markdown): what the classifier is, what it was trained and measured on, and its limits."""
    phantoms = meta.get("data", {}).get("source") == "phantoms"
    cell = f"{meta['init']}-{meta['pct']}"
    split = record.get("split", {})
    lines = [
        f"# Model card: {cell}, fine-tuning seed {meta['seed']}",
        "",
        "**Research use only.** Not a medical device, not validated for any clinical decision.",
    ]
    if phantoms:
        lines += [
            "**Trained on generated phantoms, not radiographs:** its outputs on real chest X-rays mean nothing "
            "clinically; it exists to exercise the pipeline.",
        ]
    init = meta["init"]
    how = {"random": "random initialisation", "imagenet": "ImageNet weights"}.get(
        init, f"{init} self-supervised pretraining on the training images (no labels)"
    )
    protocol = "end to end" if meta["protocol"] == "full" else "as a linear probe on the frozen backbone"
    lines += [
        "",
        "## Model",
        f"- {meta['backbone_name']} backbone ({meta['feature_dim']} features) and a linear head: "
        f"{len(meta['classes'])} independent sigmoid outputs, the CheXpert findings.",
        f"- Started from {how}; fine-tuned {protocol} on {meta['pct']}% of the training labels (seed {meta['seed']}).",
        f"- Source: `{model}`.",
        f"- Input: one grayscale image, {meta['image_size']} x {meta['image_size']} uint8, prepared as below; "
        "output: the probability of each finding.",
        "",
        "## Training data",
        f"- Dataset: {meta.get('data', {}).get('source', 'unknown')} (`{meta.get('data', {}).get('root', '?')}`).",
    ]
    for path, md5 in record.get("dataset_files", {}).items():
        lines.append(f"- `{path}`: md5 `{md5}`.")
    for path, md5 in record.get("inputs", {}).items():
        lines.append(f"- `{path}` (as this cell read it): md5 `{md5}`.")
    if split:
        train = split.get("train", {})
        lines += [
            f"- Label policy: {UNCERTAINTY.get(split.get('uncertainty'), split.get('uncertainty'))}; "
            f"{'frontal views only' if split.get('frontal_only') else 'frontal and lateral views'}.",
            f"- Training split: {train.get('n_images', '?')} images of {train.get('n_patients', '?')} patients; "
            f"{meta['pct']}% of them labelled for this cell (patient-level subsets).",
        ]
    lines += ["", "## Preprocessing", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in meta.get("preprocess", {}).items() if k not in ("workers",)]
    lines += [
        "",
        "Read as acquired (no EXIF rotation); DICOM through its Modality LUT or rescale, then its VOI LUT or "
        "window, MONOCHROME1 inverted. `cxrssl.data.images.load_and_preprocess` does all of it.",
        "",
        "## Fine-tuning parameters",
        "",
        "```json",
        json.dumps(meta.get("config", {}), indent=1, sort_keys=True),
        "```",
    ]
    metrics = record.get("metrics")
    if metrics:
        lines += [
            "",
            "## Evaluation",
            "",
            f"The cell's evaluation over its {metrics.get('seeds', '?')} fine-tuning seed(s) (this file is seed "
            f"{meta['seed']}); 95% intervals from a patient bootstrap. "
            f"Val: {metrics.get('val_images', '?')} images of {metrics.get('val_patients', '?')} patients "
            f"(every choice was made here); test: {metrics.get('test_images', '?')} images of "
            f"{metrics.get('test_patients', '?')} patients, read once.",
            "",
            f"- macro AUROC, val: {_interval(metrics, 'val_auroc_macro')}; test: {_interval(metrics, 'auroc_macro')}",
            f"- macro AP, test: {_interval(metrics, 'ap_macro')}; macro F1: {_interval(metrics, 'f1_macro')}; "
            f"macro Cohen's kappa: {_interval(metrics, 'kappa_macro')}",
        ]
    rows = record.get("per_class")
    if rows:
        lines += [
            "",
            "| finding | threshold (val F1) | val AUROC | test AUROC | test AP | test F1 | test positives |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            threshold = "–" if row.get("threshold") is None else f"{row['threshold']:.3f}"
            lines.append(
                f"| {row['class']} | {threshold} | {_interval(row, 'val_auroc')} | {_interval(row, 'auroc')} | "
                f"{_interval(row, 'ap')} | {_interval(row, 'f1')} | {row.get('test_positive', '?')} |"
            )
    if not metrics and not rows:
        lines += ["", "## Evaluation", "", "No evaluation of this cell was found beside the model (`--results`)."]
    lines += [
        "",
        "## Export",
        f"- `model.onnx` (opset {ONNX_OPSET}) and `model.ts` (TorchScript): `images` uint8 (N, "
        f"{meta['image_size']}, {meta['image_size']}) to `probabilities` float32 (N, {len(meta['classes'])}); "
        "normalisation is inside.",
        f"- Agreement with PyTorch on {check['images']} check images: largest |difference| in probability "
        f"{check['onnx_max_abs_difference']:.1e} (ONNX Runtime {check['onnxruntime']}), "
        f"{check['torchscript_max_abs_difference']:.1e} (TorchScript).",
        "",
        "## Intended use and limits",
        "- For research on label-efficient learning: comparing initialisations and label budgets, and "
        "trying the pipeline on new data. Calls use thresholds chosen on val to maximise F1 per class; "
        "another operating point needs its own validation.",
        "- Trained at low resolution on one dataset: expect it to degrade on other hospitals, devices, "
        "views (lateral), children, and findings rarer than in its training data.",
        (
            "- Its labels were drawn with its phantoms: they are exact, unlike a real dataset's."
            if phantoms
            else "- Labels come from report text (CheXpert labeller conventions), with the label policy above: they "
            "are noisy, and so is any figure measured against them."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a finetune cell (simclr-100) or a model file (.pt)")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write")
    parser.add_argument("--seed", type=int, default=None, help="the cell's fine-tuning seed (default: its first)")
    parser.add_argument("--finetune", type=Path, default=Path("models/finetune"), help="the cells' parent folder")
    parser.add_argument("--results", type=Path, default=Path("results"), help="the study's results folder")
    parser.add_argument("--lock", type=Path, default=Path("dvc.lock"), help="the run's dvc.lock")
    parser.add_argument("--split", type=Path, default=Path("metrics/split.json"), help="the split stage's metrics")
    parser.add_argument("--check", type=Path, default=NIH_SAMPLE, help="images to compare the exports on")
    parser.add_argument("--check-limit", type=int, default=150, help="at most this many check images")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="the largest |difference| in probability")
    args = parser.parse_args(argv)
    if args.check_limit < 1 or not args.tolerance > 0:
        raise ParamError("--check-limit and --tolerance: expected positive numbers")

    path = model_file(args.model, args.finetune, args.seed)
    classifier, meta = load_classifier(path)
    if "preprocess" not in meta:
        raise DataError(f"{path}: records no preprocessing; rerun its finetune stage")
    preprocess = from_dict(PreprocessConfig, "the model's preprocess", meta["preprocess"])
    images = check_images(args.check, preprocess, args.check_limit)
    module = Deployed(classifier.float().cpu()).eval()
    example = torch.from_numpy(np.repeat(images[:1], 2, axis=0))  # two images: the batch stays free
    cell = f"{meta['init']}-{meta['pct']}"
    in_run = path.resolve().parent == (args.finetune / cell).resolve()
    record = run_record(cell, args.lock, args.split, args.results) if in_run else {}
    if not in_run:
        print(f"export: {path} is not a cell of {args.finetune}: the card has no run record", file=sys.stderr)
    with atomic_dir(args.out) as tmp:
        export_onnx(module, example, tmp / "model.onnx")
        export_torchscript(module, example, tmp / "model.ts")
        check = agreement(module, tmp / "model.onnx", tmp / "model.ts", images)
        worst = max(check["onnx_max_abs_difference"], check["torchscript_max_abs_difference"])
        if worst > args.tolerance:
            raise CxrsslError(
                f"{path}: the exports differ from PyTorch by up to {worst:.2e} in probability on "
                f"{args.check}, more than --tolerance {args.tolerance:g}; nothing written"
            )
        write_json(tmp / "agreement.json", check)
        thresholds = {r["class"]: r["threshold"] for r in record.get("per_class", []) if r.get("threshold") is not None}
        write_json(tmp / "model.json", {**meta, "source": str(path), "thresholds": thresholds, "run": record})
        (tmp / "MODEL_CARD.md").write_text(model_card(meta, str(path), record, check), encoding="utf-8")
    print(
        f"export: {path} -> {args.out}/ (model.onnx, model.ts, model.json, MODEL_CARD.md); largest difference "
        f"from PyTorch on {check['images']} images: ONNX {check['onnx_max_abs_difference']:.1e}, "
        f"TorchScript {check['torchscript_max_abs_difference']:.1e}"
    )
    if meta.get("data", {}).get("source") == "phantoms":
        print(f"warning: {path} was trained on generated phantoms, not radiographs", file=sys.stderr)


def cli() -> None:
    """The ``cxrssl-export`` console script: errors as one line, not a traceback."""
    run(main, "export")


if __name__ == "__main__":
    cli()
