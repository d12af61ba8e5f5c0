"""What the study reports: the report stage gathers the stages' results into ``results/``, the folder git keeps.

Every stage's own outputs are DVC-cached (so a teammate's run cache restores
any stage, in any clone); ``results/`` is the small, readable summary a
reader sees without running anything: the headline (macro AUROC per init and
label percent on val and test, and the gain over random initialisation),
the full evaluation, the localisation scores, the figures, and each stage's
figures of merit (no timings: they differ on every run).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cxrssl.errors import DataError
from cxrssl.io import atomic_file, write_json

#: The headline's figures per cell, and the baseline every gain is measured from.
HEADLINE_KEYS = ("val_auroc_macro", "auroc_macro", "auroc_macro_low", "auroc_macro_high")
BASELINE = "random"


def read_json(path: Path, stage: str):
    """A stage's JSON output; a missing or broken file names the stage to run."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the {stage} stage first") from None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: unreadable ({error}); rerun the {stage} stage") from None


def headline(evaluation: dict, inits: list[str], percents: list[int]) -> dict:
    """``{init: {pct: {val_auroc_macro, auroc_macro, its interval, gain_over_random}}}`` from evaluate.json.

    ``gain_over_random`` is the test macro AUROC minus random initialisation's
    at the same label percent (absent when random is not among the inits).
    """
    out: dict = {}
    for init in inits:
        for pct in map(str, percents):
            cell = evaluation[init][pct]
            row = {key: cell[key] for key in HEADLINE_KEYS}
            if BASELINE in evaluation and cell["auroc_macro"] is not None:
                base = evaluation[BASELINE][pct]["auroc_macro"]
                row["gain_over_random"] = None if base is None else round(cell["auroc_macro"] - base, 5)
            out.setdefault(init, {})[pct] = row
    return out


def copy_file(source: Path, target: Path, stage: str) -> None:
    """Copy a stage's file into the results, atomically."""
    if not source.is_file():
        raise DataError(f"{source}: missing; run the {stage} stage first")
    with atomic_file(target, "wb") as handle, open(source, "rb") as original:
        shutil.copyfileobj(original, handle)


def gather(metrics: Path, plots: Path, out: Path, methods: list[str], inits: list[str], percents: list[int]) -> dict:
    """Write ``out/`` from the stages' outputs under ``metrics/`` and ``plots/``; return the headline."""
    evaluation = read_json(metrics / "evaluate.json", "evaluate")
    missing = [f"{i}-{p}" for i in inits for p in percents if str(p) not in evaluation.get(i, {})]
    if missing:
        raise DataError(f"{metrics / 'evaluate.json'}: no cell {missing[0]}; rerun the evaluate stage")
    top = headline(evaluation, inits, percents)
    stages = {
        "preprocess": read_json(metrics / "preprocess.json", "preprocess"),
        "split": read_json(metrics / "split.json", "split"),
        "pretrain": {m: read_json(metrics / "pretrain" / f"{m}.json", f"pretrain@{m}") for m in methods},
        "finetune": {
            f"{i}-{p}": read_json(metrics / "finetune" / f"{i}-{p}.json", f"finetune@{i}-{p}")
            for i in inits
            for p in percents
        },
    }
    write_json(out / "headline.json", top)
    write_json(out / "evaluate.json", evaluation)
    write_json(out / "cross_dataset.json", read_json(metrics / "evaluate_cross_dataset.json", "evaluate"))
    write_json(out / "gradcam.json", read_json(metrics / "gradcam.json", "gradcam"))
    write_json(out / "stages.json", stages)
    copy_file(metrics / "evaluate_per_class.csv", out / "evaluate_per_class.csv", "evaluate")
    for name in ("label_efficiency.png", "auroc_per_class.png"):
        copy_file(plots / "evaluate" / name, out / name, "evaluate")
    copy_file(plots / "gradcam_grid.jpg", out / "gradcam_grid.jpg", "gradcam")
    return top
