"""The self-supervised methods, registered by name (the DVC stage ``pretrain@<name>``)."""

from __future__ import annotations

from dataclasses import dataclass

from cxrssl.errors import ParamError
from cxrssl.methods.base import Method
from cxrssl.methods.byol import BYOL, BYOLConfig
from cxrssl.methods.moco import MoCo, MoCoConfig
from cxrssl.methods.simclr import SimCLR, SimCLRConfig
from cxrssl.methods.swav import SwAV, SwAVConfig
from cxrssl.models import build_backbone
from cxrssl.params import require
from cxrssl.views import ViewSpec

#: The smallest view side. Below 17 px a ResNet's last stage gets a 1x1 input, and with torch 2.14.1 on
#: this CPU the bf16 backward of a strided 3x3 convolution on a 1x1 input returns non-finite weight
#: gradients now and then (up to half of 30 passes of a 64 -> 128 channel convolution on (16, 64, 1, 1));
#: from 17 px that stage sees at least 2x2. SwAV's small crops of 32 px images were 14 px.
MIN_VIEW_SIZE = 17

METHODS = {"moco": MoCo, "simclr": SimCLR, "byol": BYOL, "swav": SwAV}
CONFIGS = {"moco": MoCoConfig, "simclr": SimCLRConfig, "byol": BYOLConfig, "swav": SwAVConfig}


@dataclass(frozen=True)
class AugmentConfig:
    """params.yaml ``pretrain.common`` augmentation keys shared by all methods (grayscale-safe)."""

    crop_scale_min: float
    local_crop_scale: tuple[float, float]
    flip: float
    rotation: float
    brightness: float
    contrast: float


def view_recipes(method: str, size: int, aug: AugmentConfig, config) -> dict[str, ViewSpec]:
    """Each method's views as its paper has them, with grayscale-safe colour operations."""
    base = dict(size=size, scale=(aug.crop_scale_min, 1.0), flip=aug.flip, rotation=aug.rotation,
                brightness=aug.brightness, contrast=aug.contrast)
    if method == "byol":  # asymmetric: blur 1.0 / 0.1, solarisation 0 / 0.2
        return {"view1": ViewSpec(**base, blur=1.0, solarize=0.0), "view2": ViewSpec(**base, blur=0.1, solarize=0.2)}
    if method == "swav":
        local = max(MIN_VIEW_SIZE, round(size * config.local_size_ratio))
        return {"global": ViewSpec(**base, blur=0.5),
                "local": ViewSpec(**{**base, "size": local, "scale": tuple(aug.local_crop_scale)}, blur=0.5)}
    return {"view": ViewSpec(**base, blur=0.5)}  # SimCLR, MoCo v2


def build_method(method: str, backbone_name: str, size: int, config, aug: AugmentConfig,
                 n_train: int | None = None) -> Method:
    """Instantiate a registered method with a fresh, randomly initialised backbone."""
    if method not in METHODS:
        raise ParamError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    backbone, dim = build_backbone(backbone_name)
    views = view_recipes(method, size, aug, config)
    if method == "moco":
        return MoCo(backbone, dim, config, size, views["view"], n_train=n_train)
    if method == "simclr":
        return SimCLR(backbone, dim, config, size, views["view"])
    if method == "byol":
        return BYOL(backbone, dim, config, size, (views["view1"], views["view2"]))
    return SwAV(backbone, dim, config, size, views["global"], views["local"])


def validate_method_config(method: str, config) -> None:
    """Value checks of a method's section (types are checked when it is read)."""
    key = f"pretrain.{method}"
    for name in ("hidden_dim", "dim"):
        require(getattr(config, name) >= 1, f"{key}.{name}", getattr(config, name), "a positive integer")
    if method == "moco":
        require(0 <= config.momentum < 1, f"{key}.momentum", config.momentum, "a number in [0, 1)")
        require(config.queue_size >= 1, f"{key}.queue_size", config.queue_size, "a positive integer")
    if method == "byol":
        require(0 <= config.tau_base < 1, f"{key}.tau_base", config.tau_base, "a number in [0, 1)")
    if method == "swav":
        # with fewer prototypes than dimensions the network can map every embedding into their
        # null space, where all scores are equal and the loss is log(K) with no signal: a collapse
        require(config.n_prototypes > config.dim, f"{key}.n_prototypes", config.n_prototypes,
                f"more prototypes than pretrain.swav.dim ({config.dim}), or the embeddings can collapse into "
                "the prototypes' null space")
        require(config.epsilon > 0, f"{key}.epsilon", config.epsilon, "> 0")
        require(config.n_local >= 0, f"{key}.n_local", config.n_local, ">= 0")
    if hasattr(config, "temperature"):
        require(config.temperature > 0, f"{key}.temperature", config.temperature, "> 0")
