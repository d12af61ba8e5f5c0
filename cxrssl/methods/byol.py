"""BYOL (Grill et al., NeurIPS 2020): online network with predictor, EMA target, no negatives."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from cxrssl.methods.base import Method, check_head, frozen_copy, update_momentum
from cxrssl.methods.losses import byol_loss
from cxrssl.models import mlp
from cxrssl.params import require
from cxrssl.views import AugmentConfig, ViewSpec


@dataclass(frozen=True)
class BYOLConfig:
    """params.yaml ``pretrain.byol``: projector and predictor 4096 -> 256 with BN; tau 0.996 -> 1 (cosine)."""

    hidden_dim: int
    dim: int
    tau_base: float

    def validate(self) -> None:
        check_head("pretrain.byol", self)
        require(0 <= self.tau_base < 1, "pretrain.byol.tau_base", self.tau_base, "a number in [0, 1)")


def cosine_tau(step: int, total_steps: int, tau_base: float) -> float:
    """BYOL's schedule: tau = 1 - (1 - tau_base) * (cos(pi * step / total) + 1) / 2."""
    return 1 - (1 - tau_base) * (math.cos(math.pi * step / max(total_steps, 1)) + 1) / 2


class BYOL(Method):
    """Online: backbone -> projector -> predictor (all trained). Target: EMA copy of backbone and projector."""

    Config = BYOLConfig

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: BYOLConfig, views: tuple[ViewSpec, ...], n_train: int
    ):
        super().__init__(backbone, feature_dim, config, views, n_train)
        self.projector = mlp(feature_dim, config.hidden_dim, config.dim)
        self.predictor = mlp(config.dim, config.hidden_dim, config.dim)
        self.target_backbone = frozen_copy(self.backbone)
        self.target_projector = frozen_copy(self.projector)
        self.tau = config.tau_base

    @staticmethod
    def views_for(view: ViewSpec, config: BYOLConfig, augment: AugmentConfig) -> tuple[ViewSpec, ...]:
        """The paper's asymmetric views: blur 1.0 / 0.1, solarisation 0 / 0.2."""
        return replace(view, blur=1.0, solarize=0.0), replace(view, blur=0.1, solarize=0.2)

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
