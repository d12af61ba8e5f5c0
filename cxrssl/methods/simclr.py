"""SimCLR (Chen et al., ICML 2020): two views, NT-Xent with in-batch negatives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cxrssl.methods.base import Method, check_head
from cxrssl.methods.losses import nt_xent
from cxrssl.models import mlp
from cxrssl.params import require
from cxrssl.views import ViewSpec


@dataclass(frozen=True)
class SimCLRConfig:
    """params.yaml ``pretrain.simclr``: projector 2048 -> 128 and tau as in the paper (tau 0.1 for large batches)."""

    hidden_dim: int
    dim: int
    temperature: float

    def validate(self) -> None:
        check_head("pretrain.simclr", self)
        require(self.temperature > 0, "pretrain.simclr.temperature", self.temperature, "> 0")


class SimCLR(Method):
    """Backbone + projector ``Linear(D, 2048) -> BN -> ReLU -> Linear(2048, 128)``; loss NT-Xent over 2N views."""

    Config = SimCLRConfig

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: SimCLRConfig, views: tuple[ViewSpec, ...], n_train: int
    ):
        super().__init__(backbone, feature_dim, config, views, n_train)
        self.projector = mlp(feature_dim, config.hidden_dim, config.dim)

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        z = self.projector(self.backbone(torch.cat(views)))  # one pass: BN sees both views
        return nt_xent(z[:n], z[n:], self.config.temperature)
