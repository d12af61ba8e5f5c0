"""BYOL (Grill et al., NeurIPS 2020): online network with predictor, EMA target, no negatives."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cxrssl.methods.base import Method, frozen_copy, update_momentum
from cxrssl.methods.losses import byol_loss
from cxrssl.models import mlp
from cxrssl.views import ViewSpec


@dataclass(frozen=True)
class BYOLConfig:
    """params.yaml ``pretrain.byol``: projector and predictor 4096 -> 256 with BN; tau 0.996 -> 1 (cosine)."""

    hidden_dim: int
    dim: int
    tau_base: float


def cosine_tau(step: int, total_steps: int, tau_base: float) -> float:
    """BYOL's schedule: tau = 1 - (1 - tau_base) * (cos(pi * step / total) + 1) / 2."""
    return 1 - (1 - tau_base) * (math.cos(math.pi * step / max(total_steps, 1)) + 1) / 2


class BYOL(Method):
    """Online: backbone -> projector -> predictor (all trained). Target: EMA copy of backbone and projector."""

    def __init__(self, backbone: nn.Module, feature_dim: int, config: BYOLConfig, size: int,
                 views: tuple[ViewSpec, ViewSpec]):
        super().__init__(backbone, feature_dim)
        self.config = config
        self.projector = mlp(feature_dim, config.hidden_dim, config.dim)
        self.predictor = mlp(config.dim, config.hidden_dim, config.dim)
        self.target_backbone = frozen_copy(self.backbone)
        self.target_projector = frozen_copy(self.projector)
        self.views = views
        self.tau = config.tau_base

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        both = torch.cat(views)
        p = self.predictor(self.projector(self.backbone(both)))
        with torch.no_grad():
            z = self.target_projector(self.target_backbone(both))
        # symmetric: view 1 predicts view 2's target and vice versa
        return byol_loss(p[:n], z[n:]) + byol_loss(p[n:], z[:n])

    @torch.no_grad()
    def on_step(self, step: int, total_steps: int) -> None:
        self.tau = cosine_tau(step, total_steps, self.config.tau_base)
        update_momentum(self.backbone, self.target_backbone, self.tau)
        update_momentum(self.projector, self.target_projector, self.tau)
