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
        raise ParamError(
            "params: pretrain.common.backbone is 'resnet10', which has no ImageNet weights; "
            "use resnet18, resnet50 or densenet121 for the imagenet init"
        )
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        raise DataError(
            f"ImageNet weights for {name} are not at {cached} and cannot be downloaded here; "
            f"download {weights.url} on a machine with internet access and copy it to that path "
            f"(or set TORCH_HOME to a folder whose checkpoints/ holds it)"
        )
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


def read_weights_file(path: Path, kind: str, keys: tuple[str, ...], when_missing: str, rerun: str = "") -> dict:
    """The dict a stage saved with torch.save, with ``keys`` checked; one clear error naming ``path`` otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: missing; {when_missing}")
    try:  # weights_only: tensors and plain containers only; a pickled object that would run code is refused
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(
            f"{path}: not a readable {kind} file ({reason}); weight files are loaded without unpickling code"
        ) from None
    if not isinstance(state, dict):
        raise DataError(f"{path}: not a {kind} file (it holds a {type(state).__name__}, not a dict){rerun}")
    missing = [key for key in keys if key not in state]
    if missing:
        raise DataError(f"{path}: not a {kind} file (no {missing[0]!r}){rerun}")
    return state


def load_weights(module: nn.Module, weights: dict, path: Path, backbone_name: str) -> None:
    """``module.load_state_dict(weights)``, failing with the file's name when they do not fit."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as error:
        raise DataError(f"{path}: weights do not fit {backbone_name} ({error})") from None


def load_initial(path: str | Path) -> tuple[nn.Module, int, dict]:
    """A backbone written by a pretrain or baseline stage: (module, feature size, the file's metadata)."""
    path = Path(path)
    state = read_weights_file(
        path,
        "backbone",
        ("backbone_name", "backbone", "method"),
        "run the stage that writes it (pretrain@<method> or baseline@<init>)",
    )
    backbone, dim = build_backbone(state["backbone_name"])
    load_weights(backbone, state["backbone"], path, state["backbone_name"])
    return backbone, dim, {k: v for k, v in state.items() if k != "backbone"}
