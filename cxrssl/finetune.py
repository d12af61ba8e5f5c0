"""Fine-tuning a backbone on a label fraction (stage ``finetune@<init>-<pct>``).

Two protocols:

* ``full``: the backbone and a 14-way linear head are trained end to end,
  with a light augmentation (flip, small rotation, brightness and
  contrast; no crop, so a finding near the edge stays in view) computed on
  tensors.
* ``linear``: the backbone is frozen; its features of the train and val
  images are computed once (no augmentation) and only the linear head is
  trained on them.

Both use the one training loop (:func:`cxrssl.train.fit`: autocast, AdamW,
OneCycleLR, clipping, checkpoints), a masked BCE or focal loss (U-Ignore's
masked labels carry no loss), an optional weighted sampler against class
imbalance, and model selection with early stopping on the val macro AUROC.
The test split is never looked at here.

With several processes (:mod:`cxrssl.distributed`) every process draws the
same global batches (uniform or weighted) and trains on its slice; features
and val scores are computed in parts and gathered; BatchNorm statistics are
the global batch's.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cxrssl import distributed
from cxrssl.cells import SCORE_COLUMNS
from cxrssl.data.schema import CLASSES
from cxrssl.errors import DataError
from cxrssl.initial import load_weights, read_weights_file
from cxrssl.metrics import auroc
from cxrssl.models import build_backbone
from cxrssl.params import require
from cxrssl.tracking import Tracker
from cxrssl.train import TIMINGS, LoopConfig, autocast, fit, to_device, without_timings
from cxrssl.views import ViewSpec, make_view, normalize, to_float

PROTOCOLS = ("full", "linear")
LOSSES = ("bce", "focal")


@dataclass(frozen=True)
class FinetuneConfig(LoopConfig):
    """params.yaml ``finetune``.

    Attributes (besides :class:`LoopConfig`'s):
        linear_pcts: the label percents whose cells train only a linear
            head on the frozen backbone (linear evaluation); every other
            percent is fine-tuned end to end (:meth:`protocol_for`).
        loss: "bce" or "focal".
        focal_gamma, focal_alpha: focal loss (Lin et al. 2017); alpha weighs
            positives (null: no weighting).
        weighted_sampler: draw training images with replacement, weighted by
            the inverse frequency of their rarest positive class.
        epochs, lr, min_steps: the full protocol's schedule: at least
            ``epochs`` epochs and ``min_steps`` optimiser steps (small label
            fractions get more epochs), OneCycleLR peaking at ``lr``.
        linear_epochs, linear_lr, linear_min_steps: the same for the linear
            protocol, whose steps on cached features cost next to nothing.
        evaluations: val evaluations spread evenly over training (at most
            one per epoch); the best one's weights are kept.
        patience: stop after this many evaluations without improvement
            (0: never stop early).
        flip, rotation, brightness, contrast: training augmentation (full
            protocol); flip is a probability and may be 0.
        seeds: one fine-tuning run per seed (repeats for mean ± sd).
    """

    linear_pcts: list[int]
    loss: str
    focal_gamma: float
    focal_alpha: float | None
    weighted_sampler: bool
    min_steps: int
    linear_epochs: int
    linear_lr: float
    linear_min_steps: int
    evaluations: int
    patience: int
    flip: float
    rotation: float
    brightness: float
    contrast: float
    seeds: list[int]

    def validate(self) -> None:
        super().validate("finetune")
        require(
            len(set(self.linear_pcts)) == len(self.linear_pcts) and all(1 <= p <= 100 for p in self.linear_pcts),
            "finetune.linear_pcts",
            self.linear_pcts,
            "a list of distinct label percents in 1..100",
        )
        require(self.loss in LOSSES, "finetune.loss", self.loss, " or ".join(LOSSES))
        require(self.focal_gamma >= 0, "finetune.focal_gamma", self.focal_gamma, ">= 0")
        require(
            self.focal_alpha is None or 0 < self.focal_alpha < 1,
            "finetune.focal_alpha",
            self.focal_alpha,
            "null or a number in (0, 1)",
        )
        require(self.min_steps >= 0, "finetune.min_steps", self.min_steps, ">= 0")
        require(self.linear_epochs >= 1, "finetune.linear_epochs", self.linear_epochs, "a positive integer")
        require(self.linear_lr > 0, "finetune.linear_lr", self.linear_lr, "> 0")
        require(self.linear_min_steps >= 0, "finetune.linear_min_steps", self.linear_min_steps, ">= 0")
        require(self.evaluations >= 1, "finetune.evaluations", self.evaluations, "a positive integer")
        require(self.patience >= 0, "finetune.patience", self.patience, ">= 0")
        require(0 <= self.flip <= 1, "finetune.flip", self.flip, "a probability")
        require(0 <= self.rotation <= 90, "finetune.rotation", self.rotation, "0 to 90 degrees")
        require(0 <= self.brightness < 1, "finetune.brightness", self.brightness, "a number in [0, 1)")
        require(0 <= self.contrast < 1, "finetune.contrast", self.contrast, "a number in [0, 1)")
        require(
            len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds) and min(self.seeds) >= 0,
            "finetune.seeds",
            self.seeds,
            "a list of distinct non-negative integers",
        )

    def protocol_for(self, pct: int) -> str:
        """The protocol of the ``pct``% cell: "linear" (frozen backbone) or "full" (end to end)."""
        return "linear" if pct in self.linear_pcts else "full"

    def view(self, size: int) -> ViewSpec:
        """The training augmentation: no crop (a finding near the edge stays in view)."""
        return ViewSpec(
            size=size,
            scale=(1.0, 1.0),
            ratio=(1.0, 1.0),
            flip=self.flip,
            rotation=self.rotation,
            jitter=1.0,
            brightness=self.brightness,
            contrast=self.contrast,
            blur=0.0,
        )


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor, config: FinetuneConfig) -> torch.Tensor:
    """Masked BCE or focal loss, averaged over the labels that are not masked (NaN targets).

    Focal: ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017), with
    ``alpha_t = alpha`` for positives and ``1 - alpha`` for negatives.
    """
    logits = logits.float()
    mask = ~torch.isnan(targets)
    t = torch.nan_to_num(targets, nan=0.0)
    loss = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    if config.loss == "focal":
        p = torch.sigmoid(logits)
        p_t = p * t + (1 - p) * (1 - t)
        loss = loss * (1 - p_t) ** config.focal_gamma
        if config.focal_alpha is not None:
            loss = loss * (config.focal_alpha * t + (1 - config.focal_alpha) * (1 - t))
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def sample_weights(targets: np.ndarray) -> np.ndarray:
    """Per-image sampling weights: inverse frequency of the image's rarest positive class.

    Images without a positive label count as one more class ("none"), so they
    are neither lost nor favoured. Masked labels count as not positive.
    """
    positive = np.nan_to_num(targets, nan=0.0) > 0
    none = ~positive.any(axis=1)
    frequency = np.concatenate([positive, none[:, None]], axis=1).mean(axis=0)
    inverse = np.where(frequency > 0, 1.0 / np.maximum(frequency, 1e-12), 0.0)
    members = np.concatenate([positive, none[:, None]], axis=1)
    return (members * inverse).max(axis=1)


def per_class_auroc(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(classes,) AUROC of each class over its unmasked labels (NaN targets); NaN without both labels."""
    values = np.full(targets.shape[1], np.nan)
    for k in range(targets.shape[1]):
        keep = ~np.isnan(targets[:, k])
        y = targets[keep, k]
        if 0 < y.sum() < len(y):
            values[k] = auroc(y, scores[keep, k], np.ones((1, len(y))))[0]
    return values


def macro_auroc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Mean AUROC over classes with both labels present (masked labels left out); NaN if none."""
    values = per_class_auroc(targets, scores)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


class Classifier(nn.Module):
    """Backbone followed by a linear head with one logit per class."""

    def __init__(self, backbone: nn.Module, feature_dim: int, n_classes: int = len(CLASSES)):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def load_classifier(path: str | Path) -> tuple[Classifier, dict]:
    """A classifier written by a finetune stage (``model-seed<k>.pt``): the module (eval mode) and its metadata."""
    path = Path(path)
    state = read_weights_file(
        path,
        "finetune model",
        ("backbone_name", "feature_dim", "classes", "model"),
        "run its finetune stage first",
        "; rerun its finetune stage",
    )
    backbone, dim = build_backbone(state["backbone_name"])
    model = Classifier(backbone, dim, len(state["classes"]))
    load_weights(model, state["model"], path, state["backbone_name"])
    return model.eval(), {k: v for k, v in state.items() if k != "model"}


@torch.no_grad()
def backbone_features(
    backbone: nn.Module, images: torch.Tensor, device: torch.device, amp: bool, chunk: int = 256
) -> torch.Tensor:
    """Frozen features of uint8 images (N, S, S), computed once, in eval mode.

    With several processes each computes a part and every process gets all
    of them (so all processes must call it).
    """
    backbone.eval()
    # NHWC weights, as fit trains them: a frozen or freshly loaded backbone is still NCHW, which oneDNN runs
    # markedly slower (docs/performance.md, "CheXpert's size"). In place; the values are the same weights.
    backbone.to(memory_format=torch.channels_last)

    def compute(rows: slice) -> torch.Tensor:
        out = []
        for start in range(rows.start, rows.stop, chunk):  # a chunk at a time: never the whole split in memory
            part = images[start : min(start + chunk, rows.stop)]
            with autocast(device, amp):
                out.append(backbone(normalize(to_float(to_device(part, device)))).float())
        return torch.cat(out)

    return distributed.gather_rows(compute, len(images))


@torch.no_grad()
def predict(model: Classifier, images: torch.Tensor, device: torch.device, amp: bool, chunk: int = 256) -> np.ndarray:
    """Sigmoid scores (N, classes) of uint8 images, no augmentation: the head (fp32) on :func:`backbone_features`."""
    model.eval()
    return torch.sigmoid(model.head(backbone_features(model.backbone, images, device, amp, chunk))).cpu().numpy()


def schedule(n_train: int, config: FinetuneConfig) -> tuple[int, int, int, int]:
    """Batch size, steps per epoch, epochs and evaluation interval (in epochs) for ``n_train`` images."""
    batch = min(config.batch_size, n_train)
    steps_per_epoch = max(1, n_train // batch)
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    if config.max_steps is not None:  # the loop stops there: the val checks are spread over what runs
        epochs = min(epochs, math.ceil(config.max_steps / steps_per_epoch))
    every = max(1, math.ceil(epochs / config.evaluations))
    return batch, steps_per_epoch, epochs, every


def finetune(
    backbone: nn.Module,
    feature_dim: int,
    train_images: torch.Tensor,
    train_targets: np.ndarray,
    val_images: torch.Tensor,
    val_targets: np.ndarray,
    config: FinetuneConfig,
    protocol: str,
    seed: int,
    device: torch.device,
    checkpoint=None,
    stage: str = "finetune",
    fingerprint: str = "",
    live: Tracker | None = None,
) -> tuple[Classifier, list[dict], dict]:
    """Fine-tune ``backbone`` (a fresh copy) on the train images and select on val.

    Args:
        backbone: the initial backbone (left untouched).
        train_images, val_images: (N, S, S) uint8.
        train_targets, val_targets: (N, classes) 1/0 with NaN where masked.
        config: the finetune settings.
        protocol: "linear" (a head on the frozen backbone's features) or "full" (end to end).
        seed: seeds the head's initialisation, batches and augmentations.
        checkpoint: resume file (see :func:`cxrssl.train.fit`).
        live: the live log (loss by step; loss, lr, val macro AUROC and images/s by epoch).

    Returns:
        The classifier with the best val weights, the per-epoch history and a
        summary (best epoch, best val macro AUROC, epochs run, schedule).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: expected one of {PROTOCOLS}")
    linear = protocol == "linear"
    if linear:
        config = replace(config, epochs=config.linear_epochs, lr=config.linear_lr, min_steps=config.linear_min_steps)
    batch, steps_per_epoch, epochs, every = schedule(len(train_images), config)
    config = replace(config, epochs=epochs, batch_size=batch)
    torch.manual_seed(seed)
    model = Classifier(copy.deepcopy(backbone), feature_dim).to(device)
    if not linear:
        model = distributed.sync_batchnorm(model)
    y_train = torch.tensor(train_targets, dtype=torch.float32, device=device)
    weights = torch.tensor(sample_weights(train_targets), dtype=torch.double) if config.weighted_sampler else None
    if linear:
        for parameter in model.backbone.parameters():
            parameter.requires_grad_(False)
        train_x = backbone_features(model.backbone, train_images, device, config.amp)
        val_x = backbone_features(model.backbone, val_images, device, config.amp)
        # standardised features (statistics of the train subset) make one learning rate fit every backbone;
        # the scaling is folded into the head afterwards, so the saved model takes raw features
        mean = train_x.mean(0)
        std = train_x.std(0).clamp(min=1e-6) if len(train_x) > 1 else torch.ones_like(mean)
        train_x, val_x = (train_x - mean) / std, (val_x - mean) / std
        trainable: nn.Module = model.head
    else:
        trainable = model
        view = config.view(train_images.shape[-1])

    def batches(generator: torch.Generator):
        # the same global order in every process (the weighted draws too); each trains on its slice
        cpu = torch.Generator().manual_seed(generator.initial_seed())
        n = len(train_images)
        if weights is not None:
            order = torch.multinomial(weights, steps_per_epoch * batch, replacement=True, generator=cpu)
        else:
            order = torch.randperm(n, generator=cpu)
        augment = distributed.rank_generator(generator)
        for i in range(steps_per_epoch):
            rows = order[i * batch : (i + 1) * batch]
            mine = distributed.shard(rows)
            if linear:
                x = train_x[mine.to(device)]
            else:
                x = make_view(to_float(to_device(train_images[mine], device)), view, augment)
            y = y_train[mine.to(device)]
            share = None
            if distributed.active():  # this slice's labels / the global batch's: DDP's mean is then the batch loss
                counted = (~torch.isnan(y_train[rows.to(device)])).sum().clamp(min=1)
                share = (~torch.isnan(y)).sum() * distributed.world_size() / counted
            yield (x, y, share), len(rows)

    def loss_fn(batch_):
        x, y, share = batch_
        logits = model.head(x) if linear else model(x)
        loss = multilabel_loss(logits, y, config)
        return loss if share is None else loss * share

    state: dict = {"best_auroc": -1.0, "best_epoch": 0, "best_weights": None, "since_best": 0}

    def evaluate(epoch: int) -> dict:
        if (epoch + 1) % every and epoch + 1 != epochs:
            return {}
        if linear:
            model.head.eval()
            with torch.no_grad():
                scores = torch.sigmoid(model.head(val_x)).cpu().numpy()
            model.head.train()
        else:
            scores = predict(model, val_images, device, config.amp)
            model.train()
        auroc = macro_auroc(val_targets, scores)
        if auroc > state["best_auroc"]:
            # the frozen backbone never changes: keep (and checkpoint every epoch) only what trains
            state.update(
                best_auroc=auroc,
                best_epoch=epoch + 1,
                since_best=0,
                best_weights={k: v.detach().clone() for k, v in trainable.state_dict().items()},
            )
        else:
            state["since_best"] += 1
        return {"val_auroc_macro": auroc}

    def stop() -> bool:
        return config.patience > 0 and state["since_best"] >= config.patience

    if linear:
        model.backbone.eval()
    history = fit(
        trainable,
        loss_fn,
        batches,
        steps_per_epoch,
        config,
        seed,
        device,
        checkpoint,
        stage=stage,
        fingerprint=json.dumps(
            {"config": asdict(config), "protocol": protocol, "seed": seed, "user": fingerprint}, sort_keys=True
        ),
        on_epoch_end=evaluate,
        extra_state=state,
        stop=stop,
        live=live,
    )
    if state["best_weights"] is None:
        raise DataError(
            f"{stage}: no val class has both a positive and a negative label, so no model can be "
            "selected on val; give val more patients (split.val_fraction) or check the labels"
        )
    trainable.load_state_dict(state["best_weights"])
    if linear:
        with torch.no_grad():
            model.head.weight.div_(std)
            model.head.bias.sub_(model.head.weight @ mean)
    model.eval()
    summary = {
        "best_epoch": state["best_epoch"],
        "val_auroc_macro": state["best_auroc"],
        "epochs_run": len(history),
        "epochs_planned": epochs,
        "batch_size": batch,
        "steps_per_epoch": steps_per_epoch,
        "train_images": len(train_images),
        "seconds": sum(h["seconds"] for h in history),
    }
    return model, history, summary


@dataclass
class CellRun:
    """What a finetune cell trained, per seed: the states to save, the val and test scores, the curves.

    Attributes:
        models: seed -> the classifier's state and its metadata (:func:`load_classifier` reads it back).
        predictions: one row per seed, split and image: ``split, seed, row, patient, score:<class>...``.
        curves: the per-epoch history of every seed (no timings), with a ``seed`` column.
        runs: seed -> its summary (best epoch, val macro AUROC, schedule; no timings).
    """

    models: dict[int, dict]
    predictions: pd.DataFrame
    curves: pd.DataFrame
    runs: dict[str, dict]


def finetune_cell(
    backbone: nn.Module,
    feature_dim: int,
    cell: tuple[str, int, str],
    train: tuple,
    val: tuple,
    test: tuple,
    config: FinetuneConfig,
    device: torch.device,
    checkpoint: Callable[[int], Path],
    stage: str,
    fingerprint: str,
    provenance: dict,
    live: Tracker | None = None,
) -> CellRun:
    """Fine-tune one cell once per seed of ``config.seeds`` with its percent's protocol, and score val and test.

    Args:
        cell: (init, label percent, backbone name), recorded in each saved state.
        train, val, test: ``(frame, images)`` of each split: the frame's ``row`` and ``patient``
            columns (and, for train and val, the class labels) and the uint8 images in that order.
        checkpoint: seed -> its resume file.
        stage, fingerprint: name the run in messages; make a checkpoint resume only the same start.
        provenance: recorded in each saved state: the store's ``preprocess`` and ``data`` settings, so
            that the classifier can prepare new images as its training images were (:mod:`cxrssl.predict`).
        live: the cell's live log; each seed logs under ``seed<k>/``.
    """
    labels = list(CLASSES)
    init, pct, backbone_name = cell
    protocol = config.protocol_for(pct)
    models, predictions, curves, runs = {}, [], [], {}
    for seed in config.seeds:
        model, history, summary = finetune(
            backbone,
            feature_dim,
            train[1],
            train[0][labels].to_numpy(dtype=float),
            val[1],
            val[0][labels].to_numpy(dtype=float),
            config,
            protocol,
            seed,
            device,
            checkpoint(seed),
            stage=f"{stage} seed {seed}",
            fingerprint=fingerprint,
            live=live.seed(seed) if live is not None else None,
        )
        for name, (frame, images) in (("val", val), ("test", test)):
            scores = predict(model, images, device, config.amp)
            identity_columns = pd.DataFrame(
                {"split": name, "seed": seed, "row": frame["row"].to_numpy(), "patient": frame["patient"].to_numpy()}
            )
            predictions.append(pd.concat([identity_columns, pd.DataFrame(scores, columns=SCORE_COLUMNS)], axis=1))
        curves.append(pd.DataFrame(without_timings(history)).assign(seed=seed))
        runs[str(seed)] = {
            k: round(v, 5) if isinstance(v, float) else v for k, v in summary.items() if k not in TIMINGS
        }
        models[seed] = {
            "init": init,
            "pct": pct,
            "protocol": protocol,
            "seed": seed,
            "backbone_name": backbone_name,
            "feature_dim": feature_dim,
            "image_size": int(train[1].shape[-1]),
            "classes": labels,
            "model": model.state_dict(),
            "config": asdict(config),
            **provenance,
        }
    return CellRun(models, pd.concat(predictions, ignore_index=True), pd.concat(curves, ignore_index=True), runs)
