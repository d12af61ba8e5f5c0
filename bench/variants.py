"""Run pipeline variants with ``dvc exp run`` and record each one's val and test macro AUROC per cell.

    python -m bench.variants defaults          # every comparison behind a default (bench/defaults.json)
    python -m bench.variants seeds             # pretraining and fine-tuning seeds 1 and 2 (bench/seeds.json)
    python -m bench.variants defaults --only moco-m-0.99 byol-tau-0.8

Each variant is the committed params.yaml with a few ``-S`` changes, run
with the pipeline itself (``dvc exp run``, in this workspace, one after the
other: DVC's run cache makes every stage a variant shares with an earlier
run free). Its ``results/evaluate.json`` is read as soon as it finishes and
its per-cell macro AUROC (val, with the patient-bootstrap interval, and test)
is stored under the variant's name. Defaults are decided on val only; the
test figures are kept so that the final configuration's can be read once.
Each variant starts from the committed params.yaml, and when all have run
the workspace is put back to the committed run (``git checkout params.yaml
dvc.lock results`` and ``dvc checkout``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cxrssl.io import write_json

REPO = Path(__file__).resolve().parents[1]
#: DVC and the stages' ``python`` from this environment, wherever the shell's PATH points
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

#: name -> -S changes. A method's own parameters are compared on that method alone (and random), which
#: reuses every other stage from the run cache.
ONE = {m: [f"methods=[{m}]", f"inits=[random,{m}]"] for m in ("moco", "simclr", "byol", "swav")}
#: A shared parameter is decided on every method: SimCLR's variant and this one for the other three.
OTHERS = ["methods=[moco,byol,swav]", "inits=[random,moco,byol,swav]"]
DEFAULTS = {
    "default": [],
    "contrast-1.0": ["phantoms.contrast=1.0", *ONE["simclr"]],
    "contrast-2.0": ["phantoms.contrast=2.0", *ONE["simclr"]],
    "crop-0.2": ["pretrain.common.crop_scale_min=0.2", *ONE["simclr"]],
    "crop-0.8": ["pretrain.common.crop_scale_min=0.8", *ONE["simclr"]],
    "crop-0.2-others": ["pretrain.common.crop_scale_min=0.2", *OTHERS],
    "crop-0.8-others": ["pretrain.common.crop_scale_min=0.8", *OTHERS],
    "epochs-12": ["pretrain.common.epochs=12", *ONE["simclr"]],
    "backbone-resnet18": ["pretrain.common.backbone=resnet18", *ONE["simclr"]],
    "swav-local-4": ["pretrain.swav.n_local=4", *ONE["swav"]],
    "swav-eps-0.05": ["pretrain.swav.epsilon=0.05", *ONE["swav"]],
    "swav-eps-0.01": ["pretrain.swav.epsilon=0.01", *ONE["swav"]],
    "moco-m-0.99": ["pretrain.moco.momentum=0.99", *ONE["moco"]],
    "moco-m-0.999": ["pretrain.moco.momentum=0.999", *ONE["moco"]],
    "moco-queue-4096": ["pretrain.moco.queue_size=4096", *ONE["moco"]],
    "byol-tau-0.8": ["pretrain.byol.tau_base=0.8", *ONE["byol"]],
    "byol-tau-0.99": ["pretrain.byol.tau_base=0.99", *ONE["byol"]],
    "protocol-full": ["finetune.linear_pcts=[]"],
    "protocol-linear": ["finetune.linear_pcts=[1,10,100]"],
}
SEEDS = {f"seed-{k}": [f"pretrain.common.seed={k}", f"finetune.seeds=[{k}]"] for k in (1, 2)}
STUDIES = {"defaults": (DEFAULTS, "defaults.json"), "seeds": (SEEDS, "seeds.json")}
KEYS = (
    "val_auroc_macro",
    "val_auroc_macro_low",
    "val_auroc_macro_high",
    "auroc_macro",
    "auroc_macro_low",
    "auroc_macro_high",
    "protocol",
)


def dvc(*args: str) -> str:
    result = subprocess.run([str(BIN / "dvc"), *args], cwd=REPO, capture_output=True, text=True, env=ENV)
    if result.returncode:
        sys.exit(f"dvc {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


def exp_run(changes: list[str]) -> list[str]:
    """``dvc exp run`` with ``-S`` changes on top of the committed params.yaml; the stages it ran."""
    subprocess.run(["git", "checkout", "params.yaml", "dvc.lock", "results"], cwd=REPO, check=True)
    log = dvc("exp", "run", *[arg for change in changes for arg in ("-S", change)])
    return sorted({line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")})


def restore() -> None:
    """Put the workspace back to the committed run."""
    subprocess.run(["git", "checkout", "params.yaml", "dvc.lock", "results"], cwd=REPO, check=True)
    dvc("checkout", "-q")


def cells(evaluation: dict) -> dict:
    """{init: {pct: the macro AUROC figures}} of a results/evaluate.json."""
    return {
        init: {pct: {k: cell.get(k) for k in KEYS} for pct, cell in by_pct.items()}
        for init, by_pct in evaluation.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--only", nargs="*", help="run only these variants (the others keep their record)")
    args = parser.parse_args(argv)
    variants, name = STUDIES[args.study]
    out = REPO / "bench" / name
    record = json.loads(out.read_text()) if out.exists() else {}
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        for variant, changes in variants.items():
            if args.only and variant not in args.only:
                continue
            start = time.perf_counter()
            ran = exp_run(changes)
            evaluation = json.loads((REPO / "results/evaluate.json").read_text())
            record[variant] = {
                "changes": changes,
                "revision": revision,
                "cells": cells(evaluation),
                "stages_run": ran,
            }
            write_json(out, record)
            minutes = (time.perf_counter() - start) / 60
            print(f"{variant}: {', '.join(ran) or 'all from the run cache'} ({minutes:.1f} min)", flush=True)
    finally:
        restore()


if __name__ == "__main__":
    main()
