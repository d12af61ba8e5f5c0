"""MoCo v2 (Chen et al., 2020; He et al., CVPR 2020): momentum key encoder and a queue of negatives."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cxrssl import distributed
from cxrssl.methods.base import Method, check_head, frozen_copy, update_momentum
from cxrssl.methods.losses import info_nce
from cxrssl.models import mlp
from cxrssl.params import require
from cxrssl.views import ViewSpec


@dataclass(frozen=True)
class MoCoConfig:
    """params.yaml ``pretrain.moco``.

    Attributes:
        hidden_dim, dim: the MLP head (MoCo v2: 2048 -> 128, no BN).
        queue_size: negatives kept (65,536 in the paper); clipped to the training set.
        momentum: key encoder momentum m (0.999).
        temperature: tau (0.2 in MoCo v2).
        shuffle_bn_groups: the key batch is shuffled and split into this many
            groups with their own BatchNorm statistics, the single-device
            equivalent of MoCo's shuffle-BN (1 turns it off). With several
            processes the keys are shuffled across all of them (as in the
            paper's code) and each process splits its share into this many
            groups.
    """

    hidden_dim: int
    dim: int
    queue_size: int
    momentum: float
    temperature: float
    shuffle_bn_groups: int

    def validate(self) -> None:
        key = "pretrain.moco"
        check_head(key, self)
        require(self.queue_size >= 1, f"{key}.queue_size", self.queue_size, "a positive integer")
        require(0 <= self.momentum < 1, f"{key}.momentum", self.momentum, "a number in [0, 1)")
        require(self.temperature > 0, f"{key}.temperature", self.temperature, "> 0")
        require(self.shuffle_bn_groups >= 1, f"{key}.shuffle_bn_groups", self.shuffle_bn_groups, "a positive integer")


class MoCo(Method):
    """Query encoder (backbone + MLP), momentum key encoder, queue of normalised keys as buffers."""

    Config = MoCoConfig
    sync_bn = False  # shuffle-BN: per-process statistics of shuffled keys are the point

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: MoCoConfig, views: tuple[ViewSpec, ...], n_train: int
    ):
        super().__init__(backbone, feature_dim, config, views, n_train)
        self.head = mlp(feature_dim, config.hidden_dim, config.dim, batch_norm=False)
        self.key_backbone = frozen_copy(self.backbone)
        self.key_head = frozen_copy(self.head)
        queue_size = config.queue_size
        if queue_size > n_train:
            warnings.warn(
                f"pretrain.moco.queue_size {queue_size} is larger than the training set ({n_train} "
                f"images); clipped to {n_train}",
                stacklevel=2,
            )
            queue_size = n_train
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, config.dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def _grouped(self, backbone: nn.Module, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
        groups = max(1, min(self.config.shuffle_bn_groups, x.shape[0] // 2))
        return torch.cat([head(backbone(chunk)) for chunk in x.chunk(groups)])

    @torch.no_grad()
    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        """Keys with shuffle-BN: permute, encode in groups (own BN statistics), un-permute.

        With several processes: of the global batch's images, permuted by
        rank 0's permutation; returns the global batch's keys.
        """
        x = distributed.gather_no_grad(x)
        order = distributed.broadcast(torch.randperm(x.shape[0], device=x.device))
        mine = x[order].chunk(distributed.world_size())[distributed.rank()]
        keys = F.normalize(self._grouped(self.key_backbone, self.key_head, mine).float(), dim=1)
        return distributed.gather_no_grad(keys)[torch.argsort(order)]

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest keys (ring buffer), wrapping around the end."""
        n, size = keys.shape[0], self.queue.shape[0]
        ptr = int(self.queue_ptr)
        index = (torch.arange(n, device=keys.device) + ptr) % size
        self.queue[index[-size:]] = keys[-size:].to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + n) % size)

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        x_q, x_k = views
        q = self._grouped(self.backbone, self.head, x_q)
        keys = self._keys(x_k)  # the global batch's
        n, rank = q.shape[0], distributed.rank()
        loss = info_nce(q, keys[rank * n : (rank + 1) * n], self.queue.clone(), self.config.temperature)
        self._dequeue_and_enqueue(keys)
        return loss

    @torch.no_grad()
    def on_step(self, step: int, total_steps: int) -> None:
        update_momentum(self.backbone, self.key_backbone, self.config.momentum)
        update_momentum(self.head, self.key_head, self.config.momentum)
