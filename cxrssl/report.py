"""What the study reports: the report stage gathers the stages' results into ``results/``, the folder git keeps.

Every stage's own outputs are DVC-cached (so a teammate's run cache restores
any stage, in any clone); ``results/`` is the small, readable summary a
reader sees without running anything: the headline (macro AUROC per init and
label percent on val and test, and the gain over random initialisation),
the full evaluation, the localisation scores, the figures, and each stage's
figures of merit (no timings: they differ on every run), and all of it in
one self-contained page, ``report.html`` (:mod:`cxrssl.report_html`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cxrssl.errors import DataError
from cxrssl.io import atomic_file, write_json
from cxrssl.report_html import ReportInputs, read_per_class, render, write_report

#: The baseline every gain is measured from.
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
    """What variants are compared on, from evaluate.json: macro AUROC per init and label percent.

    ``{"val": {init: {pct: ...}}, "test": ..., "test_low": ..., "test_high": ..., "test_gain": ...}``:
    val first (choose on it), then test with its interval, and the test gain
    over random initialisation at the same percent (for the other inits,
    when random is one of them). Grouped by figure, so that ``dvc exp show``
    names the columns ``val.simclr.10`` and can keep just the val ones.
    """
    keys = {
        "val": "val_auroc_macro",
        "test": "auroc_macro",
        "test_low": "auroc_macro_low",
        "test_high": "auroc_macro_high",
    }
    out: dict = {
        name: {init: {str(p): evaluation[init][str(p)][key] for p in percents} for init in inits}
        for name, key in keys.items()
    }
    if BASELINE in inits:
        out["test_gain"] = {
            init: {
                str(p): None
                if None in (out["test"][init][str(p)], out["test"][BASELINE][str(p)])
                else round(out["test"][init][str(p)] - out["test"][BASELINE][str(p)], 5)
                for p in percents
            }
            for init in inits
            if init != BASELINE
        }
    return out


def copy_file(source: Path, target: Path, stage: str) -> None:
    """Copy a stage's file into the results, atomically."""
    if not source.is_file():
        raise DataError(f"{source}: missing; run the {stage} stage first")
    with atomic_file(target, "wb") as handle, open(source, "rb") as original:
        shutil.copyfileobj(original, handle)


def gather(
    metrics: Path,
    plots: Path,
    out: Path,
    methods: list[str],
    inits: list[str],
    percents: list[int],
    settings: dict | None = None,
) -> dict:
    """Write ``out/`` from the stages' outputs under ``metrics/`` and ``plots/``; return the headline.

    ``settings``: the other parameters the page names (``evaluate.confidence``, ``gradcam.pct``, ...), by
    dotted key.
    """
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
    cross = read_json(metrics / "evaluate_cross_dataset.json", "evaluate")
    localisation = read_json(metrics / "gradcam.json", "gradcam")
    grid = plots / "gradcam_grid.jpg"
    if not grid.is_file():
        raise DataError(f"{grid}: missing; run the gradcam stage first")
    page = render(  # before anything is written: a missing curve leaves the results as they were
        ReportInputs(
            evaluation=evaluation,
            top=top,
            per_class=read_per_class(metrics / "evaluate_per_class.csv"),
            curves=plots / "evaluate" / "curves",
            gradcam=localisation,
            grid_jpeg=grid.read_bytes(),
            stages=stages,
            cross=cross,
            methods=methods,
            inits=inits,
            percents=percents,
            settings=dict(settings or {}),
        )
    )
    write_json(out / "headline.json", top)
    write_json(out / "evaluate.json", evaluation)
    write_json(out / "cross_dataset.json", cross)
    write_json(out / "gradcam.json", localisation)
    write_json(out / "stages.json", stages)
    copy_file(metrics / "evaluate_per_class.csv", out / "evaluate_per_class.csv", "evaluate")
    for name in ("label_efficiency.png", "auroc_per_class.png"):
        copy_file(plots / "evaluate" / name, out / name, "evaluate")
    copy_file(plots / "gradcam_grid.jpg", out / "gradcam_grid.jpg", "gradcam")
    write_report(out / "report.html", page)
    return top
