"""Self-supervised pretraining of one method on the train split's images (stage ``pretrain@<method>``)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cxrssl import distributed
from cxrssl.errors import ParamError
from cxrssl.methods import MIN_VIEW_SIZE, build_method
from cxrssl.methods.base import Method
from cxrssl.models import BACKBONES, pick_device
from cxrssl.params import require
from cxrssl.tracking import Tracker
from cxrssl.train import LoopConfig, fit, to_device
from cxrssl.views import AugmentConfig, make_view, normalize, to_float


@dataclass(frozen=True)
class PretrainConfig(LoopConfig):
    """params.yaml ``pretrain.common``: what all methods share.

    Attributes (besides :class:`LoopConfig`'s):
        seed: seeds the weights, batches and augmentations.
        backbone: one of :data:`cxrssl.models.BACKBONES`.
        crop_scale_min: smallest crop area of the (global) random resized crops.
        local_crop_scale: crop area range of SwAV's small crops.
        flip, rotation, brightness, contrast: the grayscale-safe augmentations.
        probe_images: images used for the collapse indicator.
        view_size: side of the (global) views in pixels; null: the store's
            image size. Smaller views cost less per step (compute goes with
            pixels), and the backbone is then used at the store's size, as
            the papers pretrain on 224 px crops of larger images.
    """

    seed: int
    backbone: str
    crop_scale_min: float
    local_crop_scale: list[float]
    flip: float
    rotation: float
    brightness: float
    contrast: float
    probe_images: int
    view_size: int | None

    def validate(self) -> None:
        super().validate("pretrain.common")
        require(self.seed >= 0, "pretrain.common.seed", self.seed, "a non-negative integer")
        require(self.backbone in BACKBONES, "pretrain.common.backbone", self.backbone, f"one of {', '.join(BACKBONES)}")
        require(0 < self.crop_scale_min <= 1, "pretrain.common.crop_scale_min", self.crop_scale_min, "in (0, 1]")
        low_high = self.local_crop_scale
        require(
            len(low_high) == 2 and 0 < low_high[0] <= low_high[1] <= 1,
            "pretrain.common.local_crop_scale",
            low_high,
            "[low, high] with 0 < low <= high <= 1",
        )
        require(0 <= self.flip <= 1, "pretrain.common.flip", self.flip, "a probability")
        require(0 <= self.rotation <= 90, "pretrain.common.rotation", self.rotation, "0 to 90 degrees")
        require(
            self.view_size is None or self.view_size >= MIN_VIEW_SIZE,
            "pretrain.common.view_size",
            self.view_size,
            f"null or an integer >= {MIN_VIEW_SIZE}",
        )

    def augment(self) -> AugmentConfig:
        return AugmentConfig(
            crop_scale_min=self.crop_scale_min,
            local_crop_scale=tuple(self.local_crop_scale),
            flip=self.flip,
            rotation=self.rotation,
            brightness=self.brightness,
            contrast=self.contrast,
        )


def check_batch_split(batch_size: int, processes: int) -> None:
    """The global batch must split evenly (SimCLR's gather and MoCo's shuffle need equal shares)."""
    if batch_size % processes:
        raise ParamError(
            f"pretrain.common.batch_size {batch_size} does not split evenly across {processes} "
            "processes; make it a multiple of distributed.nproc_per_node x nodes"
        )


@torch.no_grad()
def embedding_spread(method: Method, images: torch.Tensor, device: torch.device) -> float:
    """Mean per-dimension std of L2-normalised backbone features: ~0 means collapse.

    For features spread evenly on the sphere it is about 1/sqrt(D).
    """
    method.eval()
    features = torch.cat([method.embed(normalize(to_float(chunk.to(device)))).float() for chunk in images.split(256)])
    method.train()
    return float(F.normalize(features, dim=1).std(dim=0).mean())


def pretrain(
    method_name: str,
    images: torch.Tensor,
    config: PretrainConfig,
    method_config,
    checkpoint: Path | None,
    device: torch.device | None = None,
    live: Tracker | None = None,
) -> tuple[Method, list[dict], dict]:
    """Pretrain one method.

    Args:
        method_name: "moco", "simclr", "byol" or "swav".
        images: (N, S, S) uint8 training images (labels are not used), a tensor
            or the store's rows read through its memory map
            (:class:`cxrssl.distributed.MappedRows`, as the stage passes them).
        config: shared settings; ``method_config`` the method's own.
        checkpoint: resume file, written every epoch.
        device: defaults to CUDA when available.
        live: the stage's live log (loss by step; loss, lr, embedding spread and images/s by epoch).

    With several processes (:mod:`cxrssl.distributed`) ``config.batch_size``
    is the global batch, split evenly across them.

    Returns:
        The trained method, its per-epoch history and a summary for the metrics file.
    """
    device = device or pick_device()
    torch.manual_seed(config.seed)
    size = config.view_size or images.shape[-1]
    method = build_method(method_name, config.backbone, size, method_config, config.augment(), n_train=len(images)).to(
        device
    )
    if method.sync_bn:
        method = distributed.sync_batchnorm(method)
    check_batch_split(config.batch_size, distributed.world_size())
    steps_per_epoch = len(images) // config.batch_size
    if steps_per_epoch < 1:
        raise ParamError(
            f"pretrain.common.batch_size {config.batch_size} is larger than the training set ({len(images)} images)"
        )
    probe = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[: config.probe_images]]

    def batches(generator: torch.Generator):
        cpu = torch.Generator().manual_seed(generator.initial_seed())
        order = torch.randperm(len(images), generator=cpu)  # the same in every process
        augment = distributed.rank_generator(generator)
        for i in range(steps_per_epoch):
            rows = distributed.shard(order[i * config.batch_size : (i + 1) * config.batch_size])
            batch = to_float(to_device(images[rows], device))
            yield [make_view(batch, spec, augment) for spec in method.views], config.batch_size

    fingerprint = json.dumps(
        {
            "method": method_name,
            "common": asdict(config),
            "method_config": asdict(method_config),
            "n": len(images),
            "size": size,
        },
        sort_keys=True,
    )
    start = time.perf_counter()
    history = fit(
        method,
        method.loss,
        batches,
        steps_per_epoch,
        config,
        config.seed,
        device,
        checkpoint,
        stage=f"pretrain@{method_name}",
        fingerprint=fingerprint,
        on_step=method.on_step,
        before_optimizer_step=method.before_optimizer_step,
        on_epoch_end=lambda epoch: {"embedding_std": embedding_spread(method, probe, device)},
        live=live,
    )
    summary = {
        "method": method_name,
        "backbone": config.backbone,
        "epochs": len(history),  # fewer than config.epochs where max_steps cut the run
        "final_loss": history[-1]["loss"],
        "images_per_s": sum(h["images_per_s"] for h in history) / len(history),
        "views_per_image": len(method.views),
        "wall_time_s": time.perf_counter() - start,
        "embedding_std": history[-1]["embedding_std"],
        "embedding_std_uniform": method.feature_dim**-0.5,
    }
    return method, history, summary
