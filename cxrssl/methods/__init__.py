"""The self-supervised methods, registered by name (the DVC stage ``pretrain@<name>``).

Adding a method: one file in this package (a :class:`~cxrssl.methods.base.Method`
subclass with its ``Config``), one line in :data:`METHODS`, its section
``pretrain.<name>`` in params.yaml, and its name in params.yaml's ``methods``.
"""

from __future__ import annotations

from cxrssl.errors import ParamError
from cxrssl.methods.base import MIN_VIEW_SIZE, Method
from cxrssl.methods.byol import BYOL
from cxrssl.methods.moco import MoCo
from cxrssl.methods.simclr import SimCLR
from cxrssl.methods.swav import SwAV
from cxrssl.models import build_backbone
from cxrssl.views import AugmentConfig

METHODS: dict[str, type[Method]] = {
    "moco": MoCo,
    "simclr": SimCLR,
    "byol": BYOL,
    "swav": SwAV,
}

__all__ = ["METHODS", "MIN_VIEW_SIZE", "Method", "build_method", "config_class"]


def config_class(method: str) -> type:
    """The dataclass of params.yaml's ``pretrain.<method>``."""
    if method not in METHODS:
        raise ParamError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return METHODS[method].Config


def build_method(method: str, backbone_name: str, size: int, config, augment: AugmentConfig, n_train: int) -> Method:
    """Instantiate a registered method with a fresh, randomly initialised backbone, for ``n_train`` images."""
    cls = METHODS[method] if method in METHODS else config_class(method)  # the latter raises the error
    backbone, dim = build_backbone(backbone_name)
    return cls(backbone, dim, config, cls.views_for(augment.view(size), config, augment), n_train)
