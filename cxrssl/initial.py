"""Initial backbones for fine-tuning: random, ImageNet, or a pretrain stage's output."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from cxrssl.errors import DataError, ParamError
from cxrssl.models import build_backbone

BASELINES = ("random", "imagenet")


def imagenet_weights(name: str):
    """torchvision's ImageNet weights for ``name``, from torch's cache only (no download here)."""
    if name == "resnet10":
        raise ParamError("params: pretrain.common.backbone is 'resnet10', which has no ImageNet weights; "
                         "use resnet18, resnet50 or densenet121 for the imagenet init")
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        raise DataError(f"ImageNet weights for {name} are not at {cached} and cannot be downloaded here; "
                        f"download {weights.url} on a machine with internet access and copy it to that path "
                        f"(or set TORCH_HOME to a folder whose checkpoints/ holds it)")
    return weights


def baseline_backbone(init: str, name: str, seed: int) -> tuple[nn.Module, int, str]:
    """The backbone of a baseline init, its feature size and where its weights came from."""
    if init not in BASELINES:
        raise ParamError(f"params: baselines has {init!r}; expected one of {', '.join(BASELINES)}")
    if init == "random":
        torch.manual_seed(seed)
        backbone, dim = build_backbone(name)
        return backbone, dim, f"random initialisation, seed {seed}"
    weights = imagenet_weights(name)
    try:
        backbone, dim = build_backbone(name, weights=weights)
    except Exception as error:  # a truncated or foreign file in the cache
        raise DataError(f"ImageNet weights for {name} could not be loaded from torch's cache ({error})") from None
    return backbone, dim, f"torchvision {weights}"


def load_initial(path: str | Path) -> tuple[nn.Module, int, dict]:
    """A backbone written by a pretrain or baseline stage: (module, feature size, the file's metadata)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; run the stage that writes it (pretrain@<method> or baseline@<init>)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise DataError(f"{path}: not a readable backbone file ({error})") from None
    missing = [key for key in ("backbone_name", "backbone", "method") if key not in state]
    if missing:
        raise DataError(f"{path}: not a backbone file (no {missing[0]!r})")
    backbone, dim = build_backbone(state["backbone_name"])
    try:
        backbone.load_state_dict(state["backbone"])
    except RuntimeError as error:
        raise DataError(f"{path}: weights do not fit {state['backbone_name']} ({error})") from None
    return backbone, dim, {k: v for k, v in state.items() if k != "backbone"}
