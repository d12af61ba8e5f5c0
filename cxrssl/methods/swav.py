"""SwAV (Caron et al., NeurIPS 2020): online clustering with swapped prediction and multi-crop."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cxrssl.methods.base import Method
from cxrssl.methods.losses import sinkhorn, swapped_prediction
from cxrssl.models import mlp
from cxrssl.views import ViewSpec


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


class SwAV(Method):
    """Backbone -> projector -> L2-normalised embedding -> bias-free prototypes (L2-normalised every step)."""

    def __init__(self, backbone: nn.Module, feature_dim: int, config: SwAVConfig, size: int,
                 global_view: ViewSpec, local_view: ViewSpec):
        super().__init__(backbone, feature_dim)
        self.config = config
        self.projector = mlp(feature_dim, config.hidden_dim, config.dim)
        self.prototypes = nn.Linear(config.dim, config.n_prototypes, bias=False)
        self.views = (global_view, global_view) + (local_view,) * config.n_local
        # queue[i] holds earlier embeddings of global crop i (zeros = empty)
        self.register_buffer("queue", torch.zeros(2, config.queue_size, config.dim))
        self.step = 0
        self.normalize_prototypes()

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
                    self.queue[i] = torch.cat([z[i * n:(i + 1) * n].detach(), self.queue[i]])[:self.config.queue_size]
        return swapped_prediction(crops, codes, self.config.temperature)

    def before_optimizer_step(self, step: int) -> None:
        self.step = step
        if step < self.config.freeze_prototypes_steps:
            self.prototypes.weight.grad = None  # frozen: AdamW skips parameters without gradients

    @torch.no_grad()
    def on_step(self, step: int, total_steps: int) -> None:
        self.step = step + 1
        self.normalize_prototypes()
