"""Backbones (torchvision) adapted to one-channel radiographs, and the MLP heads of the SSL methods."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from cxrssl.errors import ParamError

BACKBONES = ("resnet10", "resnet18", "resnet50", "densenet121")


def pick_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _one_channel(conv: nn.Conv2d) -> nn.Conv2d:
    """The same convolution for 1-channel input; pretrained RGB filters are summed over channels."""
    new = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def build_backbone(name: str, weights=None) -> tuple[nn.Module, int]:
    """A torchvision backbone without its classifier, taking (N, 1, H, W) input.

    Args:
        name: "resnet10" (ResNet-18 with one block per stage, for small CPU runs),
            "resnet18", "resnet50" or "densenet121".
        weights: torchvision weights enum or None (random initialisation).

    Returns:
        The module, mapping (N, 1, H, W) to (N, D) features, and D.
    """
    if name not in BACKBONES:
        raise ParamError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")
    if name == "resnet10":  # ResNet-18 with one basic block per stage: half the compute, no pretrained weights
        if weights is not None:
            raise ParamError("resnet10 has no pretrained weights")
        model = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    else:
        model = getattr(torchvision.models, name)(weights=weights)
    if name.startswith("resnet"):
        model.conv1 = _one_channel(model.conv1)
        dim = model.fc.in_features
        model.fc = nn.Identity()
    else:
        model.features.conv0 = _one_channel(model.features.conv0)
        dim = model.classifier.in_features
        model.classifier = nn.Identity()
    return model, dim


def mlp(in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool = True) -> nn.Sequential:
    """Linear -> (BatchNorm) -> ReLU -> Linear: the 2-layer heads of SimCLR, MoCo v2, BYOL and SwAV."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden_dim))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
    return nn.Sequential(*layers)


def last_conv_block(backbone: nn.Module) -> nn.Module:
    """The backbone's last convolutional block (the default Grad-CAM target layer)."""
    if hasattr(backbone, "layer4"):
        return backbone.layer4[-1]
    return backbone.features.denseblock4
