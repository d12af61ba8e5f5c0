"""What every self-supervised method provides to the one training loop."""

from __future__ import annotations

import copy

import torch
from torch import nn

from cxrssl.views import ViewSpec


class Method(nn.Module):
    """A self-supervised method: a backbone, its heads, its views and its loss.

    Subclasses set ``views`` (the recipes of the crops each image yields) and
    implement ``loss(views)``. ``on_step(step, total_steps)`` runs after each
    optimiser step (momentum updates, prototype normalisation);
    ``before_step(step)`` runs before the backward pass's optimiser step
    (freezing prototypes). ``sync_bn``: with several processes, BatchNorm
    computes statistics over the global batch (SimCLR, BYOL and SwAV, as
    their papers do; MoCo shuffles BN across processes instead).
    """

    views: tuple[ViewSpec, ...] = ()
    sync_bn: bool = True

    def __init__(self, backbone: nn.Module, feature_dim: int):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def before_optimizer_step(self, step: int) -> None:
        """Hook between backward() and optimizer.step()."""

    @torch.no_grad()
    def on_step(self, step: int, total_steps: int) -> None:
        """Hook after optimizer.step()."""

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features of normalised images, for probes and collapse checks."""
        return self.backbone(images)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A momentum (target/key) copy: same weights, no gradients."""
    target = copy.deepcopy(module)
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    return target


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, m: float) -> None:
    """target <- m * target + (1 - m) * online, for parameters and float buffers (BN statistics)."""
    for p_online, p_target in zip(online.parameters(), target.parameters()):
        p_target.mul_(m).add_(p_online.detach(), alpha=1 - m)
    for b_online, b_target in zip(online.buffers(), target.buffers()):
        if b_target.dtype.is_floating_point:
            b_target.copy_(b_online)
