"""How long docs/gpu.md's CheXpert recipe takes on 1 and on 8 GPUs: derived from measured costs, to plan a run.

    python -m bench.time_to_result        # after python -m bench.rehearsal (its record in bench/results.json)

No GPU was measured here, so the GPU figures are derived, and every step
says which of its inputs was measured and which assumed:

* **measured on this machine (CPU, 224 px, ResNet-50)**, by the rehearsal:
  each method's training seconds per image over the bare backbone's
  forward+backward seconds per view (its *cost* in backbone passes per
  image: views, momentum encoders, heads, queues and loss included);
  an end-to-end fine-tuning step against the same ceiling; and the data's counts at
  CheXpert's size (train, val images). The CPU-bound stages (preprocess,
  evaluate, gradcam) are taken as measured on 2 cores, scaled by the number
  of cells they handle.
* **assumed**: the GPU's rate for that bare pass, ResNet-50 at 224 px with
  mixed precision: NVIDIA's published training throughput for ResNet-50
  v1.5 on A100 80GB (DeepLearningExamples, PyTorch, DGX A100: 2,470
  images/s on 1 GPU, 16,621 on 8, so 84% scaling), single-channel input
  counted as three; a forward pass alone costs a third of forward+backward;
  a method's cost in passes is the same on a GPU as on the CPU (views are
  made on the GPU, [view_throughput] puts them at a few percent of a step).

Recorded in bench/results.json under ``time_to_result``; docs/performance.md
shows it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench._record import RESULTS, record

#: docs/gpu.md's recipe: what sets the amount of work
RECIPE = {
    "pretrain_epochs": 100,
    "methods": ["moco", "simclr", "byol", "swav"],
    "probe_images": 4096,
    "finetune_epochs": 10,
    "finetune_batch": 64,
    "finetune_min_steps": 100,
    "evaluations": 10,
    "label_percents": [1, 10, 100],
    "inits": 5,
    "seeds": 1,
}
#: NVIDIA DeepLearningExamples, PyTorch ResNet-50 v1.5, DGX A100 80GB, mixed precision, images/s
GPU_TRAIN_IMAGES_PER_S = {1: 2470, 8: 16621}
FORWARD_SHARE = 1 / 3


def derive(rehearsal: dict) -> dict:
    split = rehearsal["split_metrics"]
    n_train, n_val = split["train"]["n_images"], split["val"]["n_images"]
    n_test = split["test"]["n_images"]
    r50 = rehearsal["resnet50"]
    ceiling = rehearsal["resnet50_ceiling"]["fwd_bwd_views_per_s"]
    # cost of one training image, in bare forward+backward passes of the backbone at 224 px (measured)
    cost = {m: ceiling / r50[f"pretrain@{m}"]["images_per_s"] for m in RECIPE["methods"]}
    # an end-to-end fine-tuning step: one pass per image, plus views, head and loss (measured on one cell)
    tuned = [v["images_per_s"] for k, v in r50.items() if k.startswith("finetune@")]
    if not tuned:
        raise SystemExit("the rehearsal has no ResNet-50 fine-tuning cell: run python -m bench.rehearsal --resnet50")
    cost["finetune"] = ceiling / tuned[0]
    stages = rehearsal["stages"]
    n_cells = sum(1 for s in stages if s.startswith("finetune@"))
    n_inits = len({s.split("@")[1].rsplit("-", 1)[0] for s in stages if s.startswith("finetune@")})
    cells = RECIPE["inits"] * len(RECIPE["label_percents"]) * RECIPE["seeds"]
    cpu = {
        "preprocess": stages["preprocess"]["wall_s"],
        "split": stages["split"]["wall_s"],
        "evaluate": stages["evaluate"]["wall_s"] * cells / n_cells,
        "gradcam": stages["gradcam"]["wall_s"] * RECIPE["inits"] / n_inits,
    }
    passes: dict[str, float] = {}
    for method in RECIPE["methods"]:
        probe = RECIPE["probe_images"] * FORWARD_SHARE
        passes[f"pretrain@{method}"] = RECIPE["pretrain_epochs"] * (n_train * cost[method] + probe)
    finetune_passes = 0.0
    for pct in RECIPE["label_percents"]:
        images = n_train * pct / 100
        steps_per_epoch = max(1, int(images // RECIPE["finetune_batch"]))
        epochs = max(RECIPE["finetune_epochs"], math.ceil(RECIPE["finetune_min_steps"] / steps_per_epoch))
        checks = min(RECIPE["evaluations"], epochs)
        train = epochs * steps_per_epoch * RECIPE["finetune_batch"] * cost["finetune"]
        scored = checks * n_val + n_val + n_test  # the val checks, then val and test once more for the output
        finetune_passes += RECIPE["inits"] * RECIPE["seeds"] * (train + scored * FORWARD_SHARE)
    passes["finetune (15 cells)"] = finetune_passes
    table = {}
    for gpus, rate in GPU_TRAIN_IMAGES_PER_S.items():
        hours = {stage: p / rate / 3600 for stage, p in passes.items()}
        hours.update({stage: s / 3600 for stage, s in cpu.items()})
        table[f"{gpus}_gpu"] = {k: round(v, 2) for k, v in hours.items()} | {"total": round(sum(hours.values()), 1)}
    return {
        "recipe": RECIPE,
        "data": {"train_images": n_train, "val_images": n_val, "test_images": n_test},
        "measured": {
            "cost_in_backbone_passes_per_image": {m: round(c, 2) for m, c in cost.items()},
            "cpu_stages_s": {k: round(v, 1) for k, v in cpu.items()},
        },
        "assumed": {
            "gpu_fwd_bwd_images_per_s": GPU_TRAIN_IMAGES_PER_S,
            "gpu": "A100 80GB, mixed precision (NVIDIA DeepLearningExamples, ResNet-50 v1.5)",
            "forward_share_of_fwd_bwd": round(FORWARD_SHARE, 3),
        },
        "hours": table,
    }


def main() -> None:
    results = json.loads(Path(RESULTS).read_text())
    if "rehearsal" not in results:
        raise SystemExit("no rehearsal in bench/results.json: run python -m bench.rehearsal first")
    derived = derive(results["rehearsal"])
    for setup, hours in derived["hours"].items():
        print(setup, hours)
    record("time_to_result", derived)


if __name__ == "__main__":
    main()
