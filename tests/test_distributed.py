"""DistributedDataParallel on 2 CPU processes (gloo) against one process with the whole batch.

On a fixed batch, every method's loss and gradients with 2 processes of B
images each must match one process with 2B: that is what makes SimCLR's
gathered negatives (with gradients), SwAV's distributed Sinkhorn, MoCo's
cross-process key shuffle and the global BatchNorm correct. Fine-tuning,
through the real training loop and its distributed sampler, must end with
the same weights.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cxrssl import distributed
from cxrssl.errors import ParamError
from cxrssl.finetune import FinetuneConfig, finetune
from cxrssl.methods import build_method, config_class
from cxrssl.models import build_backbone
from cxrssl.pretraining import PretrainConfig, pretrain
from cxrssl.train import fit
from tests.conftest import settings

pytestmark = pytest.mark.slow  # stages end to end, or processes spawned: make test-quick skips them

WORLD = 2
B = 4  # images per process
SIZE = 32
METHODS = ("simclr", "moco", "byol", "swav")
SMALL = {
    "simclr": {"hidden_dim": 32, "dim": 16},
    "moco": {"hidden_dim": 32, "dim": 16, "queue_size": 24},
    "byol": {"hidden_dim": 32, "dim": 16},
    "swav": {"hidden_dim": 32, "dim": 16, "n_prototypes": 20, "n_local": 2, "epsilon": 0.05},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(worker, *args) -> None:
    port = _free_port()
    mp.spawn(_entry, args=(worker, port, args), nprocs=WORLD, join=True)


def _entry(rank: int, worker, port: int, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # a short timeout: a regression that leaves one process waiting fails in a minute, not half an hour
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        worker(*args)
    finally:
        dist.destroy_process_group()


def _method(name: str, groups: int):
    torch.manual_seed(0)
    config = settings(
        config_class(name),
        f"pretrain.{name}",
        **SMALL[name],
        **({"shuffle_bn_groups": groups} if name == "moco" else {}),
    )
    method = build_method(
        name, "resnet10", SIZE, config, settings(PretrainConfig, "pretrain.common").augment(), n_train=64
    )
    if method.sync_bn:
        method = distributed.sync_batchnorm(method)
    # float64: in float32 a max-pool tie or a ReLU at 0 decided by the last bit moves gradients by 1e-3
    return method.double().to(memory_format=torch.channels_last)


def _views(method) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [
        torch.randn(WORLD * B, 1, spec.size, spec.size, generator=generator, dtype=torch.float64)
        for spec in method.views
    ]


def _step(method, views):
    """One loss and backward through the training loop's DDP wrapper: loss, gradients, buffers."""
    step_loss = distributed.wrap(method, method.loss, torch.device("cpu"))
    torch.manual_seed(2)  # MoCo's key permutation (rank 0's, broadcast)
    loss = step_loss(views)
    loss.backward()
    value = loss.detach().clone()
    if distributed.active():
        dist.all_reduce(value)
        value /= distributed.world_size()
    grads = {k: p.grad.clone() for k, p in method.named_parameters() if p.grad is not None}
    return value, grads, {k: b.clone() for k, b in method.named_buffers()}


def _methods_worker(out: str) -> None:
    results = {}
    for name in METHODS:
        method = _method(name, groups=1)  # MoCo: 1 shuffle-BN group per process, 2 in all
        views = _views(method)
        rank = dist.get_rank()
        results[name] = _step(method, [v[rank * B : (rank + 1) * B] for v in views])
    with pytest.raises(ParamError, match="does not split evenly across 2 processes"):
        pretrain(
            "simclr",
            torch.zeros(20, SIZE, SIZE, dtype=torch.uint8),
            settings(PretrainConfig, "pretrain.common", backbone="resnet10", batch_size=5, epochs=1, probe_images=4),
            settings(config_class("simclr"), "pretrain.simclr", **SMALL["simclr"]),
            None,
            torch.device("cpu"),
        )
    if dist.get_rank() == 0:
        torch.save(results, out)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ddp") / "results.pt"
    _spawn(_methods_worker, str(out))
    return torch.load(out, weights_only=True)


@pytest.mark.parametrize("name", METHODS)
def test_ddp_2xB_matches_one_process_with_2B(two_processes, name):
    torch.set_num_threads(1)
    method = _method(name, groups=WORLD)
    loss, grads, buffers = _step(method, _views(method))
    ddp_loss, ddp_grads, ddp_buffers = two_processes[name]
    torch.testing.assert_close(ddp_loss, loss, rtol=1e-6, atol=1e-7)
    assert grads.keys() == ddp_grads.keys() and grads
    for key, grad in grads.items():  # relative to the tensor's norm: the losses themselves compute in float32
        error = float((ddp_grads[key] - grad).norm() / grad.norm().clamp(min=1e-12))
        assert error < 1e-5 or grad.norm() < 1e-9, f"{name}: gradient of {key} off by {error:.2e} (relative)"
    for key in ("queue", "queue_ptr"):  # MoCo: every process enqueues the global batch's keys, in order
        if key in buffers and name == "moco":
            torch.testing.assert_close(ddp_buffers[key], buffers[key], rtol=1e-5, atol=1e-6)
    running = [k for k in buffers if k.endswith("running_mean") and not k.startswith(("key_", "target_"))]
    if method.sync_bn:  # global-batch statistics
        for key in running:
            torch.testing.assert_close(ddp_buffers[key], buffers[key], rtol=1e-4, atol=1e-6, msg=key)


def test_helpers_are_the_identity_with_one_process():
    x = torch.randn(3, 2, requires_grad=True)
    assert distributed.gather(x) is x and distributed.shard(torch.arange(5)).tolist() == [0, 1, 2, 3, 4]
    generator = torch.Generator()
    assert distributed.rank_generator(generator) is generator


def _task(n: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (n, SIZE, SIZE), dtype=np.uint8))
    targets = (rng.random((n, 14)) < 0.3).astype(float)
    targets[rng.random((n, 14)) < 0.2] = np.nan  # U-Ignore's masked labels
    return images, targets


def _finetune(protocol: str):
    torch.manual_seed(0)
    backbone, dim = build_backbone("resnet10")
    images, targets = _task()
    val_images, val_targets = _task(24, seed=1)
    config = settings(
        FinetuneConfig,
        "finetune",
        epochs=1,
        min_steps=0,
        linear_epochs=3,
        linear_min_steps=0,
        batch_size=15,
        evaluations=2,
        patience=0,
        amp=False,
        weighted_sampler=True,
        flip=0.0,
        rotation=0.0,
        brightness=0.0,
        contrast=0.0,
    )
    model, history, _ = finetune(
        backbone, dim, images, targets, val_images, val_targets, config, protocol, 0, torch.device("cpu")
    )
    return {k: v.clone() for k, v in model.state_dict().items()}, [h["loss"] for h in history]


def _finetune_worker(out: str) -> None:
    results = {protocol: _finetune(protocol) for protocol in ("linear", "full")}
    if dist.get_rank() == 0:
        torch.save(results, out)


@pytest.mark.parametrize("protocol", ["linear", "full"])
def test_ddp_finetune_ends_with_the_weights_of_one_process(tmp_path_factory, protocol):
    """Weighted draws of 15 images split 8 + 7, masked labels, global BatchNorm, sharded val scores."""
    out = tmp_path_factory.getbasetemp() / "ddp-finetune.pt"
    if not out.exists():
        _spawn(_finetune_worker, str(out))
    ddp_state, ddp_losses = torch.load(out, weights_only=True)[protocol]
    torch.set_num_threads(1)
    state, losses = _finetune(protocol)
    # without the global BatchNorm, or with each slice's loss averaged on its own, the losses differ by > 1e-3
    np.testing.assert_allclose(ddp_losses, losses, rtol=1e-4)
    # float32: after 3 AdamW steps, end-to-end weights (BatchNorm biases near 0) differ by up to 2e-3 of their norm
    tolerance = 1e-5 if protocol == "linear" else 1e-2
    for key, value in state.items():
        if value.is_floating_point():
            error = float((ddp_state[key] - value).norm() / value.norm().clamp(min=1e-12))
            assert error < tolerance, f"{protocol}: {key} off by {error:.2e} (relative)"


def test_bad_distributed_parameters_name_their_key():
    good = {"nproc_per_node": 1, "backend": "auto"}
    with pytest.raises(ParamError, match="distributed.nproc_per_node is 0"):
        distributed.validate_params({**good, "nproc_per_node": 0})
    with pytest.raises(ParamError, match="distributed.backend is 'mpi'"):
        distributed.validate_params({**good, "backend": "mpi"})
    with pytest.raises(ParamError, match=r"unknown key distributed\.nprocs"):
        distributed.validate_params({**good, "nprocs": 2})
    with pytest.raises(ParamError, match="missing section distributed"):
        distributed.validate_params(None)
    assert distributed.validate_params(good) == good


def test_relaunch_is_skipped_for_one_process(monkeypatch):
    assert distributed.relaunch("stages.pretrain", [], 1) is None
    for name in distributed.TORCHRUN_ENV:
        monkeypatch.setenv(name, "0")
    assert distributed.relaunch("stages.pretrain", [], 2) is None  # already under torchrun


def _resume_worker(folder: str) -> None:
    """Rank 0 alone has the checkpoint (disks not shared): every process must resume from it, together."""
    rank = dist.get_rank()
    data = torch.arange(16.0).reshape(8, 2)

    def run(checkpoint, stop=None):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1)

        def batches(generator):
            order = torch.randperm(8, generator=torch.Generator().manual_seed(generator.initial_seed()))
            yield data[distributed.shard(order)], 8

        config = settings(PretrainConfig, "pretrain.common", epochs=3, batch_size=8, lr=0.01, amp=False)
        history = fit(
            model,
            lambda x: model(x).pow(2).mean(),
            batches,
            1,
            config,
            0,
            torch.device("cpu"),
            checkpoint,
            "test",
            stop=stop,
        )
        return [h["loss"] for h in history], model.weight.detach().clone()

    straight = run(None)
    own = Path(folder) / ("ck.pt" if rank == 0 else f"missing-{rank}.pt")
    run(own, stop=lambda: True)  # rank 0 writes the checkpoint after epoch 1 and all stop
    resumed = run(own)
    # an empty slice (fewer images than processes) leaves global BatchNorm finite
    bn = distributed.sync_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm1d(3)))
    out = bn(torch.randn(2, 3) if rank == 0 else torch.zeros(0, 3))
    if rank == 0:
        torch.save(
            {"straight": straight, "resumed": resumed, "bn": (out.detach(), bn[0].running_mean.clone())},
            Path(folder) / "results.pt",
        )


def test_ddp_resume_is_rank_0s_and_an_empty_slice_keeps_batchnorm_finite(tmp_path):
    _spawn(_resume_worker, str(tmp_path))
    results = torch.load(tmp_path / "results.pt", weights_only=True)
    (straight_losses, straight_weight), (resumed_losses, resumed_weight) = results["straight"], results["resumed"]
    assert len(resumed_losses) == 3 and resumed_losses == straight_losses
    torch.testing.assert_close(resumed_weight, straight_weight, rtol=0, atol=0)
    out, running_mean = results["bn"]
    assert torch.isfinite(out).all() and torch.isfinite(running_mean).all()


def test_mapped_rows_read_the_store_like_the_loaded_tensor():
    store = np.arange(5 * 2 * 2, dtype=np.uint8).reshape(5, 2, 2)
    rows = np.array([4, 0, 2])
    mapped, loaded = distributed.MappedRows(store, rows), torch.from_numpy(store[rows])
    assert len(mapped) == 3 and mapped.shape == loaded.shape
    torch.testing.assert_close(mapped[torch.tensor([2, 0])], loaded[torch.tensor([2, 0])])
    torch.testing.assert_close(mapped[1:3], loaded[1:3])
    assert [part.shape[0] for part in mapped.split(2)] == [2, 1]
