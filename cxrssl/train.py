"""The one training loop: autocast, AdamW, OneCycleLR, gradient clipping, checkpoints and resume.

Pretraining and fine-tuning both call :func:`fit`. Determinism: every epoch
reseeds the global torch RNG and the batch generator from (seed, epoch), so a
run resumed from an epoch checkpoint ends with the same weights as an
uninterrupted one on the CPU.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cxrssl import distributed
from cxrssl.errors import CxrsslError
from cxrssl.io import atomic_file
from cxrssl.params import require
from cxrssl.progress import progress
from cxrssl.tracking import STEP_POINTS, Tracker


class TrainingError(CxrsslError):
    """Training cannot go on (a non-finite loss, an incompatible checkpoint)."""


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation settings shared by the stages that train.

    Attributes:
        epochs: passes over the training set.
        batch_size: images per step.
        lr: peak learning rate of OneCycleLR (AdamW).
        weight_decay: AdamW's decoupled weight decay.
        warmup: share of steps spent warming up (OneCycleLR's pct_start).
        grad_clip: maximum gradient norm (0 = no clipping).
        amp: autocast (bf16 on CPU, bf16 or fp16 on CUDA).
        compile: run the loss (forward) through ``torch.compile`` (worth it
            on GPUs for long runs; the first steps pay the compilation).
        max_steps: stop after this many optimiser steps (null: none). The
            learning-rate schedule is laid out over the steps actually run,
            so a capped run is a short run, not a cut-off long one: for
            rehearsals and smoke tests at full data size, never for results.
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup: float
    grad_clip: float
    amp: bool
    compile: bool
    max_steps: int | None

    def validate(self, section: str = "pretrain.common") -> None:
        require(self.epochs >= 1, f"{section}.epochs", self.epochs, "a positive integer")
        require(self.batch_size >= 2, f"{section}.batch_size", self.batch_size, "an integer >= 2")
        require(self.lr > 0, f"{section}.lr", self.lr, "> 0")
        require(self.weight_decay >= 0, f"{section}.weight_decay", self.weight_decay, ">= 0")
        require(0 < self.warmup < 1, f"{section}.warmup", self.warmup, "a number in (0, 1)")
        require(self.grad_clip >= 0, f"{section}.grad_clip", self.grad_clip, ">= 0")
        require(
            self.max_steps is None or self.max_steps >= 1,
            f"{section}.max_steps",
            self.max_steps,
            "null or a positive integer",
        )


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CPU; bf16 on CUDA where supported, else fp16 (with a GradScaler)."""
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast(device.type, dtype=torch.bfloat16)


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on the training device: through pinned memory, asynchronously, to a GPU."""
    if device.type == "cuda":
        return images.pin_memory().to(device, non_blocking=True)
    return images.to(device)


#: What ``fit``'s history records of time. They differ on every run, so no output keeps them: the
#: stages print them, and the benchmarks in bench/ measure speed.
TIMINGS = ("seconds", "images_per_s")


def without_timings(history: list[dict]) -> list[dict]:
    """``fit``'s per-epoch history without the wall-clock entries (what outputs may keep)."""
    return [{k: v for k, v in epoch.items() if k not in TIMINGS} for epoch in history]


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


@dataclass
class Step:
    """What ``fit`` hands back per step to the caller's logging."""

    epoch: int
    step: int
    loss: float
    images_per_s: float


def fit(
    model: nn.Module,
    loss_fn: Callable[[object], torch.Tensor],
    batches: Callable[[torch.Generator], Iterable[tuple[object, int]]],
    steps_per_epoch: int,
    config: LoopConfig,
    seed: int,
    device: torch.device,
    checkpoint: Path | None,
    stage: str,
    fingerprint: str = "",
    on_step: Callable[[int, int], None] | None = None,
    before_optimizer_step: Callable[[int], None] | None = None,
    on_epoch_end: Callable[[int], dict] | None = None,
    extra_state: dict | None = None,
    stop: Callable[[], bool] | None = None,
    live: Tracker | None = None,
) -> list[dict]:
    """Train ``model`` and return its history, resuming from ``checkpoint`` if one is there.

    Args:
        model: the module whose trainable parameters are optimised.
        loss_fn: batch -> scalar loss (called under autocast).
        batches: generator -> iterable of (batch, n_images) for one epoch;
            all randomness of an epoch must come from the generator (or the
            global torch RNG, which is reseeded every epoch). With several
            processes the generator is seeded alike in all of them: draw the
            global order from it and take this process's
            :func:`cxrssl.distributed.shard` of each batch, augment with
            :func:`cxrssl.distributed.rank_generator`; ``n_images`` counts
            the global batch.
        steps_per_epoch: how many batches ``batches`` yields.
        config: optimisation settings.
        seed: seeds each epoch's batches and augmentations (and the global
            torch RNG), with the epoch.
        device: where the model lives.
        checkpoint: written after every epoch; one with the same ``fingerprint``
            (a description of everything that shapes the run) is resumed.
        stage: names the stage in errors ("pretrain@moco").
        on_step: (global step, total steps) after each optimiser step.
        before_optimizer_step: (global step) between backward and step.
        on_epoch_end: epoch -> extra values logged for that epoch.
        extra_state: a dict the caller owns (say, the best weights so far); it
            is saved in every checkpoint and restored in place on resume.
        stop: checked after every epoch's checkpoint; True ends training early.
        live: the stage's live log (:mod:`cxrssl.tracking`): the loss by step, then
            each epoch's record (``epoch/<key>``, ``perf/images_per_s``); kept in the
            checkpoint and replayed on resume.

    Returns:
        One dict per epoch: epoch, loss (mean), images_per_s, seconds and extras.

    Several processes (:mod:`cxrssl.distributed`): the loss runs through
    DistributedDataParallel, the logged loss is the global batch's, only
    rank 0 writes the checkpoint, and rank 0's ``stop`` decides for all.

    Raises:
        TrainingError: a non-finite loss, naming the stage, epoch and step.
    """
    # NHWC convolutions: faster under bf16 autocast on oneDNN CPUs (python -m bench.channels_last), and the
    # layout tensor cores want on CUDA. In place.
    model.to(memory_format=torch.channels_last)
    step_loss = distributed.wrap(model, loss_fn, device)
    if config.compile:
        step_loss = torch.compile(step_loss)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    epochs = math.ceil(total_steps / steps_per_epoch)
    # OneCycleLR divides by zero when its warm-up ends on the first step (warmup x steps == 1): a tiny run
    # warms up over two steps instead
    warmup = config.warmup if config.warmup * total_steps >= 2 or total_steps < 3 else 2 / total_steps
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=warmup
    )
    use_scaler = device.type == "cuda" and config.amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    history: list[dict] = []
    start_epoch = 0
    state = read_checkpoint(checkpoint, device)
    if state is not None:
        if state.get("fingerprint") == fingerprint and state.get("total_steps") == total_steps:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            history, start_epoch = state["history"], state["epoch"] + 1
            if live is not None:
                live.replay(state.get("live", []))
            if extra_state is not None:
                extra_state.clear()
                extra_state.update(state.get("extra_state", {}))
            distributed.log(f"{stage}: resuming after epoch {start_epoch} from {checkpoint}")
        else:
            distributed.log(f"{stage}: ignoring {checkpoint}, made with other settings")
        del state

    def should_stop() -> bool:
        return stop is not None and bool(distributed.broadcast_object(stop()))

    if start_epoch > 0 and should_stop():  # it had stopped early before the interruption
        return history
    for epoch in range(start_epoch, epochs):
        torch.manual_seed(epoch_seed(seed, epoch))
        generator = torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch))
        model.train()
        losses, seen, start = [], 0, time.perf_counter()
        steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)  # fewer in a run cut by max_steps
        log_every = math.ceil(steps / STEP_POINTS)
        bar = progress(total=steps, desc=f"{stage} epoch {epoch + 1}/{epochs}", unit="step")
        for i, (batch, n_images) in enumerate(itertools.islice(batches(generator), steps)):
            step = epoch * steps_per_epoch + i
            with autocast(device, config.amp):
                loss = step_loss(batch)
            value = loss.detach().item() if not distributed.active() else global_mean(loss)
            if not math.isfinite(value):
                raise TrainingError(
                    f"{stage}: non-finite loss ({value}) at epoch {epoch + 1}, "
                    f"step {i + 1} (global step {step + 1}); lower the learning rate or "
                    f"check the input"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if config.grad_clip > 0:
                norm = nn.utils.clip_grad_norm_(parameters, config.grad_clip)
                if not use_scaler and not torch.isfinite(norm):  # fp16's scaler skips such steps itself
                    raise TrainingError(
                        f"{stage}: non-finite gradient at epoch {epoch + 1}, step {i + 1} "
                        f"(global step {step + 1}) although the loss was {value:.4g}; "
                        f"lower the learning rate, turn amp off, or check the input"
                    )
            if before_optimizer_step is not None:
                before_optimizer_step(step)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if on_step is not None:
                on_step(step, total_steps)
            if live is not None and ((i + 1) % log_every == 0 or i + 1 == steps):
                live.log(step + 1, {"train/loss": value})
            losses.append(value)
            seen += n_images
            rate = seen / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{value:.4f}", img_s=f"{rate:.0f}", refresh=False)
            bar.update()
        bar.close()
        seconds = time.perf_counter() - start
        record = {
            "epoch": epoch + 1,
            "loss": sum(losses) / len(losses),
            "images_per_s": seen / seconds,
            "seconds": seconds,
            "lr": scheduler.get_last_lr()[0],
        }
        if on_epoch_end is not None:
            record.update(on_epoch_end(epoch))
        history.append(record)
        if live is not None:
            timing = {"perf/images_per_s": record["images_per_s"]}
            live.log(
                epoch * steps_per_epoch + steps,
                {f"epoch/{k}": v for k, v in record.items() if k not in TIMINGS} | timing,
            )
        if checkpoint is not None and distributed.is_main():
            save_checkpoint(
                checkpoint,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "history": history,
                    "total_steps": total_steps,
                    "fingerprint": fingerprint,
                    "extra_state": extra_state or {},
                    "live": live.rows if live is not None else [],
                },
            )
        distributed.barrier()
        if should_stop():
            break
    return history


#: What a checkpoint written by :func:`fit` holds.
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "scaler", "epoch", "history", "total_steps", "fingerprint")


def read_checkpoint(checkpoint: Path | None, device: torch.device) -> dict | None:
    """The checkpoint's state, or None. With several processes rank 0 reads it and sends it to all.

    Only rank 0 writes checkpoints, and on several machines the other
    processes may not see its disk (or may see a stale file): rank 0 decides.
    A file that is not a checkpoint of this loop (damaged, foreign, or one
    that would unpickle code: it is loaded with ``weights_only``) is reported
    and ignored; training then starts from the beginning, which is always right.
    """
    if not distributed.active():
        return _load_checkpoint(checkpoint, device)
    state = _load_checkpoint(checkpoint, torch.device("cpu")) if distributed.is_main() else None
    return distributed.broadcast_object(state)


def _load_checkpoint(checkpoint: Path | None, device: torch.device) -> dict | None:
    if checkpoint is None or not checkpoint.is_file():
        return None
    try:
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if not isinstance(state, dict) or any(key not in state for key in CHECKPOINT_KEYS):
            raise ValueError("not a checkpoint of this training loop")
        int(state["epoch"]), int(state["total_steps"])
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        distributed.log(f"ignoring {checkpoint}: not a readable checkpoint ({reason}); starting from the beginning")
        return None
    return state


def global_mean(loss: torch.Tensor) -> float:
    """The mean of the processes' losses: the global batch's loss (each is its share's mean)."""
    value = loss.detach().float().reshape(1).clone()
    torch.distributed.all_reduce(value)
    return value.item() / distributed.world_size()


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save, atomically (an interrupted save never leaves a broken checkpoint)."""
    with atomic_file(path, "wb") as handle:
        torch.save(state, handle)
