"""What every self-supervised method provides to the one training loop."""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from cxrssl.params import require
from cxrssl.views import AugmentConfig, ViewSpec

#: The smallest view side. Below 17 px a ResNet's last stage gets a 1x1 input, and the bf16 backward of a
#: strided 3x3 convolution on a 1x1 input can return non-finite weight gradients on oneDNN CPUs
#: (python -m bench.bf16_conv_bug); from 17 px that stage sees at least 2x2.
MIN_VIEW_SIZE = 17


def check_head(key: str, config) -> None:
    """The projection head's widths, which every method has: ``hidden_dim`` and ``dim``."""
    for name in ("hidden_dim", "dim"):
        require(getattr(config, name) >= 1, f"{key}.{name}", getattr(config, name), "a positive integer")


class Method(nn.Module):
    """A self-supervised method: a backbone, its heads, its views and its loss.

    A method is one file: a subclass that names its ``Config`` (the
    dataclass of its params.yaml section ``pretrain.<name>``, whose
    ``validate()`` checks its values), builds its heads in ``__init__(backbone,
    feature_dim, config, views, n_train)``, says which crops each image yields
    (``views_for``: by default two of the shared view, as SimCLR and MoCo v2
    have them) and implements ``loss(views)``; plus one line in
    :data:`cxrssl.methods.METHODS`. ``on_step(step, total_steps)`` runs after
    each optimiser step (momentum updates, prototype normalisation);
    ``before_optimizer_step(step)`` between backward and the optimiser step
    (freezing prototypes). ``sync_bn``: with several processes, BatchNorm
    computes statistics over the global batch (SimCLR, BYOL and SwAV, as
    their papers do; MoCo shuffles BN across processes instead).
    """

    Config: type
    views: tuple[ViewSpec, ...] = ()
    sync_bn: bool = True

    def __init__(self, backbone: nn.Module, feature_dim: int, config, views: tuple[ViewSpec, ...], n_train: int):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.config = config
        self.views = views
        self.n_train = n_train  # the training set's size (MoCo clips its queue to it)

    @staticmethod
    def views_for(view: ViewSpec, config, augment: AugmentConfig) -> tuple[ViewSpec, ...]:
        """The crops each image yields, from the shared view (size, crop, flip, rotation, jitter)."""
        return (replace(view, blur=0.5),) * 2

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
