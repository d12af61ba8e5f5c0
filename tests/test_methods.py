"""The four methods: a few optimiser steps lower the loss; momentum, tau, queue and prototypes behave."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from cxrssl.methods import build_method, config_class
from cxrssl.methods.base import update_momentum
from cxrssl.methods.byol import cosine_tau
from cxrssl.methods.moco import MoCo, MoCoConfig
from cxrssl.methods.swav import SwAVConfig
from cxrssl.models import build_backbone
from cxrssl.pretraining import PretrainConfig
from cxrssl.views import ViewSpec, make_view, to_float
from tests.conftest import settings

SMALL = {
    "moco": settings(MoCoConfig, "pretrain.moco", hidden_dim=64, dim=32, queue_size=64),
    "simclr": settings(config_class("simclr"), "pretrain.simclr", hidden_dim=64, dim=32),
    "byol": settings(config_class("byol"), "pretrain.byol", hidden_dim=64, dim=32, tau_base=0.99),
    "swav": settings(
        SwAVConfig, "pretrain.swav", hidden_dim=64, dim=8, n_prototypes=16, n_local=2, freeze_prototypes_steps=2
    ),
}
AUGMENT = settings(PretrainConfig, "pretrain.common").augment()


def fixed_batch(n=16, size=32):
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(n, size, size, generator=g) * 255).to(torch.uint8)
    images[: n // 2, 8:16, 8:16] = 255  # some structure to learn
    return to_float(images)


@pytest.mark.parametrize("name", ["moco", "simclr", "byol", "swav"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(name):
    torch.manual_seed(0)
    method = build_method(name, "resnet18", 32, SMALL[name], AUGMENT, n_train=64)
    if name == "moco":  # a fixed batch would enqueue its own keys as negatives: keep the queue fixed
        method._dequeue_and_enqueue = lambda keys: None
    batch = fixed_batch()
    g = torch.Generator().manual_seed(1)
    views = [make_view(batch, spec, g) for spec in method.views]  # the same views every step
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(12):
        loss = method.loss(views)
        optimizer.zero_grad()
        loss.backward()
        method.before_optimizer_step(step)
        optimizer.step()
        method.on_step(step, 12)
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < losses[0], losses


def test_every_head_is_trained_byol_projector_and_predictor_included():
    method = build_method("byol", "resnet18", 32, SMALL["byol"], AUGMENT, n_train=64)
    views = [make_view(fixed_batch(8), spec, torch.Generator().manual_seed(0)) for spec in method.views]
    method.loss(views).backward()
    for name in ("backbone", "projector", "predictor"):
        grads = [p.grad for p in getattr(method, name).parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), name
    assert all(p.grad is None for p in method.target_projector.parameters())


def test_update_momentum():
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    expected = 0.9 * target.weight.detach() + 0.1 * online.weight.detach()
    update_momentum(online, target, 0.9)
    torch.testing.assert_close(target.weight, expected)


def test_cosine_tau_goes_from_base_to_one():
    assert cosine_tau(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_tau(50, 100, 0.996) == pytest.approx(0.998)
    assert cosine_tau(100, 100, 0.996) == pytest.approx(1.0)


def test_moco_queue_is_a_ring_buffer_saved_with_the_model():
    backbone, dim = build_backbone("resnet18")
    moco = MoCo(
        backbone,
        dim,
        settings(MoCoConfig, "pretrain.moco", hidden_dim=16, dim=4, queue_size=5),
        (ViewSpec(size=32),) * 2,
        n_train=64,
    )
    keys = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    moco._dequeue_and_enqueue(keys)
    torch.testing.assert_close(moco.queue[:3], keys)
    assert int(moco.queue_ptr) == 3
    more = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    moco._dequeue_and_enqueue(more)  # wraps: rows 3, 4, 0
    torch.testing.assert_close(moco.queue[[3, 4, 0]], more)
    assert int(moco.queue_ptr) == 1
    assert "queue" in moco.state_dict() and "queue_ptr" in moco.state_dict()


def test_moco_queue_is_clipped_to_the_training_set():
    backbone, dim = build_backbone("resnet18")
    with pytest.warns(UserWarning, match="queue_size 100 is larger than the training set"):
        moco = MoCo(
            backbone,
            dim,
            settings(MoCoConfig, "pretrain.moco", hidden_dim=16, dim=4, queue_size=100),
            (ViewSpec(size=32),) * 2,
            n_train=10,
        )
    assert moco.queue.shape == (10, 4)


def test_swav_prototypes_are_normalised_and_frozen_at_first():
    method = build_method("swav", "resnet18", 32, SMALL["swav"], AUGMENT, n_train=64)
    views = [make_view(fixed_batch(8), spec, torch.Generator().manual_seed(0)) for spec in method.views]
    assert len(views) == 4 and views[2].shape[-1] < views[0].shape[-1]  # multi-crop
    method.loss(views).backward()
    method.before_optimizer_step(0)
    assert method.prototypes.weight.grad is None  # frozen during the first steps
    method.loss(views).backward()
    method.before_optimizer_step(5)
    assert method.prototypes.weight.grad is not None
    with torch.no_grad():
        method.prototypes.weight.mul_(3)
    method.on_step(5, 10)
    torch.testing.assert_close(method.prototypes.weight.norm(dim=1), torch.ones(16))


def test_swav_needs_more_prototypes_than_dimensions():
    from cxrssl.errors import ParamError

    with pytest.raises(ParamError, match=r"pretrain\.swav\.n_prototypes is 100; expected more prototypes than"):
        settings(SwAVConfig, "pretrain.swav", dim=128, n_prototypes=100).validate()


def test_small_crops_never_shrink_a_resnet_stage_to_one_pixel():
    from cxrssl.methods import MIN_VIEW_SIZE, build_method

    method = build_method(
        "swav",
        "resnet10",
        32,
        settings(SwAVConfig, "pretrain.swav", dim=16, hidden_dim=32, n_prototypes=20, n_local=2),
        AUGMENT,
        n_train=64,
    )
    assert [v.size for v in method.views] == [32, 32, MIN_VIEW_SIZE, MIN_VIEW_SIZE]
    features = method.backbone.layer3(
        method.backbone.layer2(
            method.backbone.layer1(
                method.backbone.maxpool(method.backbone.conv1(torch.zeros(2, 1, MIN_VIEW_SIZE, MIN_VIEW_SIZE)))
            )
        )
    )
    assert features.shape[-2:] == (2, 2)  # what the last stage's strided convolution sees


def test_a_new_method_is_one_class_and_one_registry_line(monkeypatch):
    """A toy method: its file (this class and its Config) plus its line in METHODS; nothing else changes."""
    from dataclasses import dataclass

    import cxrssl.methods as methods
    from cxrssl.errors import ParamError
    from cxrssl.methods.base import Method, check_head
    from cxrssl.models import mlp
    from cxrssl.params import from_dict, require
    from cxrssl.pretraining import pretrain

    @dataclass(frozen=True)
    class ToyConfig:
        hidden_dim: int
        dim: int
        scale: float

        def validate(self) -> None:
            check_head("pretrain.toy", self)
            require(self.scale > 0, "pretrain.toy.scale", self.scale, "> 0")

    class Toy(Method):
        """Two views pulled together by cosine similarity (it collapses, which is fine for a toy)."""

        Config = ToyConfig

        def __init__(self, backbone, feature_dim, config, views, n_train):
            super().__init__(backbone, feature_dim, config, views, n_train)
            self.projector = mlp(feature_dim, config.hidden_dim, config.dim)

        def loss(self, views):
            a, b = (torch.nn.functional.normalize(self.projector(self.backbone(v)), dim=1) for v in views)
            return -self.config.scale * (a * b).sum(1).mean()

    monkeypatch.setitem(methods.METHODS, "toy", Toy)  # the one registration line
    config = from_dict(methods.config_class("toy"), "pretrain.toy", {"hidden_dim": 16, "dim": 8, "scale": 1.0})
    with pytest.raises(ParamError, match=r"pretrain\.toy\.scale is -1"):
        from_dict(methods.config_class("toy"), "pretrain.toy", {"hidden_dim": 16, "dim": 8, "scale": -1})
    images = (torch.rand(16, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    common = settings(PretrainConfig, "pretrain.common", backbone="resnet10", epochs=1, batch_size=8, probe_images=8)
    method, history, _ = pretrain("toy", images, common, config, None, torch.device("cpu"))
    assert isinstance(method, Toy) and len(method.views) == 2 and np.isfinite(history[0]["loss"])
