"""SwAV (Caron et al., NeurIPS 2020): online clustering with swapped prediction and multi-crop."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from cxrssl.methods.base import MIN_VIEW_SIZE, Method, check_head
from cxrssl.methods.losses import sinkhorn, swapped_prediction
from cxrssl.models import mlp
from cxrssl.params import require
from cxrssl.views import AugmentConfig, ViewSpec


@dataclass(frozen=True)
class SwAVConfig:
    """params.yaml ``pretrain.swav``.

    Attributes:
        hidden_dim, dim: projector 2048 -> 128 with BN, as in the paper.
        n_prototypes: K (3000 for ImageNet; fewer for small datasets).
        temperature: softmax temperature of the predictions (0.1).
        epsilon, sinkhorn_iterations: Sinkhorn-Knopp (0.05, 3).
        freeze_prototypes_steps: prototypes get no update for this many steps.
        n_local: small crops per image besides the 2 global ones.
        local_size_ratio: small crop side / global side (96/224).
        queue_size: feature queue for small batches (0 = none), used from
            ``queue_start_step`` on to stabilise the Sinkhorn codes.
        queue_start_step: first step that uses the queue.
    """

    hidden_dim: int
    dim: int
    n_prototypes: int
    temperature: float
    epsilon: float
    sinkhorn_iterations: int
    freeze_prototypes_steps: int
    n_local: int
    local_size_ratio: float
    queue_size: int
    queue_start_step: int

    def validate(self) -> None:
        key = "pretrain.swav"
        check_head(key, self)
        # with fewer prototypes than dimensions the network can map every embedding into their
        # null space, where all scores are equal and the loss is log(K) with no signal: a collapse
        require(
            self.n_prototypes > self.dim,
            f"{key}.n_prototypes",
            self.n_prototypes,
            f"more prototypes than pretrain.swav.dim ({self.dim}), or the embeddings can collapse into "
            "the prototypes' null space",
        )
        require(self.temperature > 0, f"{key}.temperature", self.temperature, "> 0")
        require(self.epsilon > 0, f"{key}.epsilon", self.epsilon, "> 0")
        require(
            self.sinkhorn_iterations >= 1, f"{key}.sinkhorn_iterations", self.sinkhorn_iterations, "a positive integer"
        )
        require(self.n_local >= 0, f"{key}.n_local", self.n_local, ">= 0")
        require(0 < self.local_size_ratio <= 1, f"{key}.local_size_ratio", self.local_size_ratio, "in (0, 1]")
        require(self.queue_size >= 0, f"{key}.queue_size", self.queue_size, ">= 0")


class SwAV(Method):
    """Backbone -> projector -> L2-normalised embedding -> bias-free prototypes (L2-normalised every step)."""

    Config = SwAVConfig

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: SwAVConfig, views: tuple[ViewSpec, ...], n_train: int
    ):
        super().__init__(backbone, feature_dim, config, views, n_train)
        self.projector = mlp(feature_dim, config.hidden_dim, config.dim)
        self.prototypes = nn.Linear(config.dim, config.n_prototypes, bias=False)
        # queue[i] holds earlier embeddings of global crop i (zeros = empty)
        self.register_buffer("queue", torch.zeros(2, config.queue_size, config.dim))
        self.step = 0
        self.normalize_prototypes()

    @staticmethod
    def views_for(view: ViewSpec, config: SwAVConfig, augment: AugmentConfig) -> tuple[ViewSpec, ...]:
        """Multi-crop: 2 global views and ``n_local`` small ones (side x local_size_ratio, never under
        MIN_VIEW_SIZE), their area drawn from ``local_crop_scale``."""
        global_view = replace(view, blur=0.5)
        local = replace(
            global_view,
            size=max(MIN_VIEW_SIZE, round(view.size * config.local_size_ratio)),
            scale=tuple(augment.local_crop_scale),
        )
        return (global_view, global_view) + (local,) * config.n_local

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        embeddings = []
        for start in (0, 2):  # globals and locals in one pass each (same size within a group)
            group = views[start:2] if start == 0 else views[2:]
            if group:
                embeddings.append(F.normalize(self.projector(self.backbone(torch.cat(group))), dim=1))
        z = torch.cat(embeddings)  # (n_crops * N, dim)
        scores = self.prototypes(z)  # (n_crops * N, K)
        crops = list(scores.split(n))
        codes = []
        for i in range(2):
            crop_scores = crops[i].detach()
            use_queue = self.config.queue_size > 0 and self.step >= self.config.queue_start_step
            if use_queue and bool(self.queue[i].abs().sum() > 0):
                crop_scores = torch.cat([crop_scores, self.prototypes(self.queue[i]).detach()])
            codes.append(sinkhorn(crop_scores, self.config.epsilon, self.config.sinkhorn_iterations)[:n])
            if self.config.queue_size > 0:
                with torch.no_grad():
                    self.queue[i] = torch.cat([z[i * n : (i + 1) * n].detach(), self.queue[i]])[
                        : self.config.queue_size
                    ]
        return swapped_prediction(crops, codes, self.config.temperature)

    def before_optimizer_step(self, step: int) -> None:
        self.step = step
        if step < self.config.freeze_prototypes_steps:
            self.prototypes.weight.grad = None  # frozen: AdamW skips parameters without gradients

    @torch.no_grad()
    def on_step(self, step: int, total_steps: int) -> None:
        self.step = step + 1
        self.normalize_prototypes()
