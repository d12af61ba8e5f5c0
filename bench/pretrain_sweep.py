"""What makes self-supervised features useful on the phantoms: a sweep of pretraining settings.

    python -m bench.pretrain_sweep GRID [--data NAME=STORE:SPLITS ...] [--budget-s S] [--out FILE]

Every run of the grid pretrains one method with the stage's own code
(:func:`cxrssl.pretraining.pretrain`) under overridden settings, then fits a
linear probe on its frozen features at 1%, 10% and 100% of the train labels
and reports the test macro AUROC. ``random`` runs probe a randomly
initialised backbone; ``supervised`` runs train the backbone end to end on
100% of the labels (how learnable the task is at that resolution). Runs go in
order until the time budget is spent; each result is printed and appended to
``--out`` (JSON lines) as soon as it is known, and the whole sweep is recorded
in bench/results.json under ``pretrain_sweep_<GRID>``.

The probe is L2-regularised logistic regression per class with balanced
class weights, fitted jointly for all classes by full-batch L-BFGS on the
training device: the same objective as scikit-learn's
``LogisticRegression(C=0.1, class_weight="balanced")`` on standardised
features (bench.linear_probe), so it gives the same numbers, faster.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bench._record import record
from cxrssl.data.schema import CLASSES
from cxrssl.data.splits import subset
from cxrssl.data.store import ImageStore
from cxrssl.finetune import backbone_features, per_class_auroc
from cxrssl.methods import CONFIGS
from cxrssl.models import build_backbone, pick_device
from cxrssl.pretraining import PretrainConfig, pretrain
from cxrssl.train import LoopConfig, autocast, fit
from cxrssl.views import ViewSpec, make_view, normalize, to_float

PERCENTS = (1, 10, 100)


def base_params() -> dict:
    import yaml

    return yaml.safe_load(Path("params.yaml").read_text())["pretrain"]


def _ssl(
    method: str,
    epochs: int,
    data: str = "64",
    common: dict | None = None,
    finetune: dict | None = None,
    **method_config,
) -> dict:
    spec = {
        "kind": "ssl",
        "method": method,
        "data": data,
        "common": {"epochs": epochs, **(common or {})},
        "method_config": method_config,
    }
    return {**spec, "finetune": finetune} if finetune else spec


#: a fine-tuning budget the 2-core CPU can afford for 5 inits x 3 label fractions
FT = {"epochs": 6, "min_steps": 100, "batch_size": 64}
R10 = {"backbone": "resnet10"}
CROP = {"crop_scale_min": 0.5}


MILD = {"crop_scale_min": 0.5, "brightness": 0.2, "contrast": 0.2}

GRIDS: dict[str, dict[str, dict]] = {
    # a few seconds on a CPU: checks that every kind of run works end to end
    "smoke": {
        "random": {"kind": "random"},
        "supervised": {"kind": "supervised", "epochs": 1},
        "simclr": _ssl("simclr", 1),
        "swav": _ssl("swav", 1, n_prototypes=40, dim=16, hidden_dim=64, n_local=2, freeze_prototypes_steps=1),
        "random-ft": {
            "kind": "random",
            "backbone": "resnet10",
            "probe": False,
            "finetune": {"epochs": 1, "min_steps": 3, "batch_size": 64, "pcts": [1, 10]},
        },
        "simclr-ft": _ssl("simclr", 1, common=R10, finetune={"epochs": 1, "min_steps": 2, "pcts": [1]}),
    },
    # the second GPU sweep: full fine-tuning at a CPU-sized budget, random vs self-supervised inits
    "finetune": {
        "random-r18": {"kind": "random", "finetune": FT},
        "simclr-r18-e5": _ssl("simclr", 5, common=CROP, finetune=FT),
        "swav-r18-e5-eps02": _ssl("swav", 5, common=CROP, finetune=FT, epsilon=0.02),
        "random-r10": {"kind": "random", "backbone": "resnet10", "finetune": FT},
        "simclr-r10-e10": _ssl("simclr", 10, common={**CROP, **R10}, finetune=FT),
        "moco-r18-e5": _ssl("moco", 5, common=CROP, finetune=FT),
        "byol-r18-e5": _ssl("byol", 5, common=CROP, finetune=FT),
        "c15-random-r18": {"kind": "random", "data": "c15", "finetune": FT},
        "c15-simclr-r18-e5": _ssl("simclr", 5, data="c15", common=CROP, finetune=FT),
        "swav-r10-e10-eps02": _ssl("swav", 10, common={**CROP, **R10}, finetune=FT, epsilon=0.02),
        "random-r18-ft15": {"kind": "random", "finetune": {**FT, "epochs": 15, "pcts": [100]}},
    },
    # the GPU sweep: learnability, epochs, augmentation strength, SwAV's collapse, resolution
    "gpu": {
        "random-64": {"kind": "random"},
        "supervised-64": {"kind": "supervised", "epochs": 20},
        "simclr-64-e5": _ssl("simclr", 5),
        "simclr-64-e30": _ssl("simclr", 30),
        "simclr-64-e5-mild": _ssl("simclr", 5, common=MILD),
        "simclr-64-e30-mild": _ssl("simclr", 30, common=MILD),
        "simclr-64-e30-crop05": _ssl("simclr", 30, common={"crop_scale_min": 0.5}),
        "simclr-64-e30-vmild": _ssl(
            "simclr", 30, common={"crop_scale_min": 0.8, "brightness": 0.1, "contrast": 0.1, "rotation": 5.0}
        ),
        "moco-64-e5": _ssl("moco", 5),
        "moco-64-e5-mild": _ssl("moco", 5, common=MILD),
        "moco-64-e30-mild": _ssl("moco", 30, common=MILD),
        "byol-64-e5": _ssl("byol", 5),
        "byol-64-e5-mild": _ssl("byol", 5, common=MILD),
        "byol-64-e30-mild": _ssl("byol", 30, common=MILD),
        "swav-64-e5": _ssl("swav", 5),
        "swav-64-e5-k100-d64": _ssl("swav", 5, n_prototypes=100, dim=64),
        "swav-64-e5-k300-queue": _ssl("swav", 5, queue_size=1024, queue_start_step=60),
        "swav-64-e5-k100-d64-eps03": _ssl("swav", 5, n_prototypes=100, dim=64, epsilon=0.03),
        "swav-64-e5-k300-lr3e-4": _ssl("swav", 5, common={"lr": 3e-4}),
        "swav-64-e30-k100-d64-mild": _ssl("swav", 30, common=MILD, n_prototypes=100, dim=64),
        "simclr-64-e5-lr3e-3": _ssl("simclr", 5, common={"lr": 3e-3}),
        "simclr-64-e5-b256": _ssl("simclr", 5, common={"batch_size": 256}),
        "random-128": {"kind": "random", "data": "128"},
        "supervised-128": {"kind": "supervised", "epochs": 20, "data": "128"},
        "simclr-128-e10-mild": _ssl("simclr", 10, data="128", common=MILD),
        "random-96": {"kind": "random", "data": "96"},
        "supervised-96": {"kind": "supervised", "epochs": 20, "data": "96"},
        "simclr-96-e10-mild": _ssl("simclr", 10, data="96", common=MILD),
        "simclr-64-e100-mild": _ssl("simclr", 100, common=MILD),
    },
}


class Data:
    """Train and test images and labels of one store (on the device)."""

    def __init__(self, store: str, splits: str, device: torch.device):
        train, test = pd.read_csv(Path(splits) / "train.csv"), pd.read_csv(Path(splits) / "test.csv")
        val = pd.read_csv(Path(splits) / "val.csv")
        images = ImageStore(store)
        self.train_images = torch.from_numpy(images.load(train["row"].to_numpy())).to(device)
        self.test_images = torch.from_numpy(images.load(test["row"].to_numpy())).to(device)
        self.val_images = torch.from_numpy(images.load(val["row"].to_numpy())).to(device)
        self.val_y = val[list(CLASSES)].to_numpy(dtype=float)
        self.train_y = torch.tensor(train[list(CLASSES)].to_numpy(dtype=np.float32), device=device)
        self.test_y = test[list(CLASSES)].to_numpy(dtype=float)
        numbered = train.assign(i=np.arange(len(train)))
        self.subsets = {
            pct: torch.tensor(subset(numbered, pct / 100)["i"].to_numpy(), device=device) for pct in PERCENTS
        }


def features(backbone: torch.nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return backbone_features(backbone, images, device, amp=True, chunk=512)


def logistic_probe(
    train_x: torch.Tensor, train_y: torch.Tensor, c: float = 0.1, iterations: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's LogisticRegression(C=c, class_weight="balanced") for each column of train_y, jointly.

    sklearn minimises 0.5 |w|^2 + C sum_i s_i loss_i; divided by C n this is
    mean_i s_i loss_i + |w|^2 / (2 C n), with s_i = n / (2 n_class(i)).
    """
    n, d = train_x.shape
    k = train_y.shape[1]
    positives = train_y.sum(0).clamp(min=1)
    negatives = (n - train_y.sum(0)).clamp(min=1)
    sample_weight = torch.where(train_y > 0, n / (2 * positives), n / (2 * negatives))
    weight = torch.zeros(d, k, device=train_x.device, requires_grad=True)
    bias = torch.zeros(k, device=train_x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1,
        max_iter=iterations,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
    )

    def closure():
        optimizer.zero_grad()
        logits = train_x @ weight + bias
        loss = (F.binary_cross_entropy_with_logits(logits, train_y, reduction="none") * sample_weight).mean(0).sum()
        loss = loss + (weight**2).sum() / (2 * c * n)
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def macro_auroc(scores: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    values = per_class_auroc(y.astype(float), scores)
    per_class = {name: float(v) for name, v in zip(CLASSES, values, strict=True) if np.isfinite(v)}
    return float(np.mean(list(per_class.values()))), per_class


def probe_backbone(backbone: torch.nn.Module, data: Data, device: torch.device) -> dict:
    train_x, test_x = features(backbone, data.train_images, device), features(backbone, data.test_images, device)
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    result = {}
    for pct, rows in data.subsets.items():
        y = data.train_y[rows]
        weight, bias = logistic_probe(train_x[rows], y)
        scores = (test_x @ weight + bias).cpu().numpy()
        result[str(pct)] = round(macro_auroc(scores, data.test_y)[0], 4)
    return result


def supervised(data: Data, epochs: int, device: torch.device, seed: int = 0) -> dict:
    """End-to-end training from random initialisation on all train labels (BCE, mild augmentation)."""
    torch.manual_seed(seed)
    backbone, dim = build_backbone("resnet18")
    model = torch.nn.Sequential(backbone, torch.nn.Linear(dim, len(CLASSES))).to(device)
    config = LoopConfig(epochs=epochs, batch_size=128, lr=1e-3, weight_decay=1e-4, seed=seed)
    size = data.train_images.shape[-1]
    spec = ViewSpec(size=size, scale=(0.7, 1.0), flip=0.5, rotation=10, brightness=0.2, contrast=0.2, blur=0.0)
    steps = len(data.train_images) // config.batch_size

    def batches(generator):
        order = torch.randperm(
            len(data.train_images), generator=torch.Generator().manual_seed(generator.initial_seed())
        ).to(device)
        for i in range(steps):
            rows = order[i * config.batch_size : (i + 1) * config.batch_size]
            yield (make_view(to_float(data.train_images[rows]), spec, generator), data.train_y[rows]), len(rows)

    def loss_fn(batch):
        x, y = batch
        return F.binary_cross_entropy_with_logits(model(x).float(), y)

    history = fit(model, loss_fn, batches, steps, config, device, None, stage="supervised")
    model.eval()
    with torch.no_grad(), autocast(device, True):
        scores = torch.cat([model(normalize(to_float(chunk))).float() for chunk in data.test_images.split(512)])
    auroc, per_class = macro_auroc(scores.cpu().numpy(), data.test_y)
    return {
        "test_macro_auroc_100": round(auroc, 4),
        "per_class": {k: round(v, 3) for k, v in per_class.items()},
        "images_per_s": round(history[-1]["images_per_s"]),
        "final_loss": round(history[-1]["loss"], 4),
    }


def bootstrap_ci(y: np.ndarray, scores: np.ndarray, n: int = 100, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    values = [macro_auroc(scores[rows], y[rows])[0] for rows in (rng.integers(0, len(y), len(y)) for _ in range(n))]
    return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]


def finetune_backbone(backbone: torch.nn.Module, dim: int, data: Data, device: torch.device, settings: dict) -> dict:
    """Full (or linear) fine-tuning at each label percent: test macro AUROC with a bootstrap CI."""
    from cxrssl.finetune import FinetuneConfig, finetune, predict

    settings = dict(settings)
    pcts = settings.pop("pcts", list(PERCENTS))
    config = FinetuneConfig(**settings)
    config.validate()
    out = {}
    for pct in pcts:
        rows = data.subsets[pct]
        model, history, summary = finetune(
            backbone,
            dim,
            data.train_images[rows],
            data.train_y[rows].cpu().numpy(),
            data.val_images,
            data.val_y,
            config,
            0,
            device,
        )
        scores = predict(model, data.test_images, device, config.amp)
        auroc, _ = macro_auroc(scores, data.test_y)
        out[str(pct)] = {
            "test": round(auroc, 4),
            "ci": bootstrap_ci(data.test_y, scores),
            "val": round(summary["val_auroc_macro"], 4),
            "best_epoch": summary["best_epoch"],
            "epochs": summary["epochs_run"],
            "seconds": round(summary["seconds"], 1),
        }
    return out


def run_one(name: str, spec: dict, data: Data, device: torch.device, params: dict) -> dict:
    if spec["kind"] == "random":
        torch.manual_seed(0)
        backbone, dim = build_backbone(spec.get("backbone", "resnet18"))
        backbone = backbone.to(device)
        result = {"probe": probe_backbone(backbone, data, device)} if spec.get("probe", True) else {}
        if "finetune" in spec:
            result["finetune"] = finetune_backbone(backbone, dim, data, device, spec["finetune"])
        return result
    if spec["kind"] == "supervised":
        return supervised(data, spec["epochs"], device)
    method = spec["method"]
    common = {**params["common"], **spec["common"]}
    common = {k: v for k, v in common.items() if k in PretrainConfig.__dataclass_fields__}
    config = PretrainConfig(**common)
    config.validate()
    method_config = replace(CONFIGS[method](**params[method]), **spec["method_config"])
    trained, history, summary = pretrain(method, data.train_images, config, method_config, None, device)
    result = {}
    if "finetune" in spec:
        result["finetune"] = finetune_backbone(trained.backbone, trained.feature_dim, data, device, spec["finetune"])
    if spec.get("probe", True):
        result["probe"] = probe_backbone(trained.backbone, data, device)
    return {
        **result,
        "final_loss": round(summary["final_loss"], 4),
        "embedding_std": round(summary["embedding_std"], 4),
        "embedding_std_uniform": round(summary["embedding_std_uniform"], 4),
        "images_per_s": round(summary["images_per_s"]),
        "loss_curve": [round(h["loss"], 4) for h in history],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("grid", choices=sorted(GRIDS))
    parser.add_argument(
        "--data", action="append", default=[], help="NAME=STORE:SPLITS (default 64=data/preprocessed:data/splits)"
    )
    parser.add_argument("--budget-s", type=float, default=float("inf"), help="start no run after this many seconds")
    parser.add_argument("--out", type=Path, default=None, help="append each result here (JSON lines)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these names of the grid")
    args = parser.parse_args()
    sources = {"64": ("data/preprocessed", "data/splits")}
    for item in args.data:
        name, paths = item.split("=", 1)
        sources[name] = tuple(paths.split(":", 1))
    device = pick_device()
    params = base_params()
    loaded: dict[str, Data] = {}
    results, start = {}, time.perf_counter()
    for name, spec in GRIDS[args.grid].items():
        if args.only is not None and name not in args.only:
            continue
        if time.perf_counter() - start > args.budget_s:
            print(f"budget spent: skipping {name}", flush=True)
            continue
        key = spec.get("data", "64")
        if key not in sources or not Path(sources[key][0]).is_dir():
            print(f"no data {key!r}: skipping {name}", flush=True)
            continue
        if key not in loaded:
            loaded[key] = Data(*sources[key], device)
        run_start = time.perf_counter()
        try:
            result = {"spec": spec, **run_one(name, spec, loaded[key], device, params)}
        except Exception:  # a sweep goes on past one failed run, and says why it failed
            traceback.print_exc()
            continue
        result["seconds"] = round(time.perf_counter() - run_start, 1)
        results[name] = result
        print(json.dumps({name: {k: v for k, v in result.items() if k not in ("spec", "per_class")}}), flush=True)
        if args.out is not None:
            with args.out.open("a") as handle:
                handle.write(json.dumps({"name": name, **result}) + "\n")
    record(
        f"pretrain_sweep_{args.grid}",
        {"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device), "runs": results},
    )


if __name__ == "__main__":
    main()
