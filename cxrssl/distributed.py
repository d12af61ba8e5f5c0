"""Data-parallel training across processes (torchrun + DistributedDataParallel).

One process per GPU (or several CPU processes on the gloo backend). A
stage started by DVC as ``python -m stages.<name>`` relaunches itself under
``torch.distributed.run`` when params.yaml's ``distributed.nproc_per_node``
asks for more than one process (:func:`relaunch`); started by ``torchrun``
itself (several nodes), it joins the group the environment describes.

The contract that makes ``W`` processes of ``B / W`` images behave like one
process of ``B`` images:

* every process draws the same global order of training images (uniform or
  weighted) from the shared epoch seed and trains on its own slice of each
  global batch (:func:`shard`): the distributed sampler, with the weighted
  sampler's draws kept exactly;
* augmentations use a per-process generator (:func:`rank_generator`), so
  the processes' images get independent crops;
* DistributedDataParallel averages gradients; each loss is a mean over the
  process's share, written so that this average is the global batch's loss
  (SimCLR's negatives come from every process, with gradients,
  :func:`gather`; SwAV's Sinkhorn normalises over the global batch);
* BatchNorm sees the global batch where the method's paper has it
  (:func:`sync_batchnorm`), and MoCo shuffles keys across processes;
* only rank 0 writes outputs and checkpoints (:func:`is_main`).

With one process every function here is the identity or a no-op, and the
single-process path is the one the committed results come from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from cxrssl.errors import ParamError
from cxrssl.params import require

#: environment variables torchrun sets for each process it starts
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0 (or a single process): the process that writes outputs."""
    return rank() == 0


def log(message: str) -> None:
    """print, in rank 0 only (one line per stage, not one per process)."""
    if is_main():
        print(message)


def describe() -> str:
    """For a stage's first line: `` x N processes`` with several, and the CPU threads each process uses.

    The threads are PyTorch's: ``OMP_NUM_THREADS``, else the cores this process
    may use. Printed because a second job on the same cores slows a stage
    several-fold unless each job gets its share (docs/performance.md).
    """
    processes = f" x {world_size()} processes" if active() else ""
    return f"{processes}, {torch.get_num_threads()} CPU threads"


def under_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_ENV)


def validate_params(section: dict | None) -> dict:
    """params.yaml ``distributed``: ``nproc_per_node`` (>= 1) and ``backend`` (auto, nccl, gloo)."""
    if not isinstance(section, dict):
        raise ParamError(
            "params: missing section distributed"
            if section is None
            else "params: distributed must be a mapping of keys to values"
        )
    unknown = set(section) - {"nproc_per_node", "backend"}
    if unknown:
        raise ParamError(
            f"params: unknown key distributed.{sorted(unknown)[0]}; distributed takes backend, nproc_per_node"
        )
    for key in ("backend", "nproc_per_node"):
        if key not in section:
            raise ParamError(f"params: missing key distributed.{key}")
    n = section["nproc_per_node"]
    require(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1, "distributed.nproc_per_node", n, "a positive integer"
    )
    require(
        section["backend"] in ("auto", "nccl", "gloo"), "distributed.backend", section["backend"], "auto, nccl or gloo"
    )
    return section


def relaunch(module: str, argv: Sequence[str], nproc_per_node: int) -> int | None:
    """Run ``python -m module argv`` under torchrun with ``nproc_per_node`` processes, once.

    Returns torchrun's exit status (128 + the signal that killed it), or None
    when no relaunch is needed (one process asked for, or already started by
    torchrun).
    """
    if nproc_per_node <= 1 or under_torchrun():
        return None
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc_per_node}",
        "-m",
        module,
        *argv,
    ]
    print(f"{module}: relaunching under torchrun with {nproc_per_node} processes", flush=True)
    env = dict(os.environ)
    if not torch.cuda.is_available():  # torchrun gives each process 1 thread: share the cores out instead
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc_per_node)))
    with subprocess.Popen(command, env=env) as launcher:
        try:
            status = launcher.wait()
            return 128 - status if status < 0 else status
        except BaseException:  # Ctrl-C or SIGTERM: torchrun stops its workers on SIGTERM; SIGKILL would orphan them
            launcher.terminate()
            launcher.wait(timeout=120)
            raise


def setup(backend: str = "auto") -> torch.device:
    """Join the process group torchrun describes (if any) and return this process's device.

    ``auto`` picks NCCL on CUDA and gloo on the CPU. Each process gets the
    GPU of its LOCAL_RANK.
    """
    cuda = torch.cuda.is_available()
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return torch.device("cuda" if cuda else "cpu")
    device = torch.device("cpu")
    if cuda:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        chosen = ("nccl" if cuda else "gloo") if backend == "auto" else backend
        dist.init_process_group(chosen, timeout=timedelta(minutes=60))
    return device


def start(module: str, argv: Sequence[str] | None, section: dict | None) -> torch.device | None:
    """The processes params.yaml's ``distributed`` section asks for; this process's device.

    With ``nproc_per_node`` > 1 and not started by torchrun, the stage runs
    again under torchrun and None is returned once it has succeeded (the
    caller returns); its failure exits with torchrun's status.
    """
    config = validate_params(section)
    status = relaunch(module, sys.argv[1:] if argv is None else argv, config["nproc_per_node"])
    if status is None:
        return setup(config["backend"])
    if status:
        print(
            f"error: {module}: its {config['nproc_per_node']} processes under torchrun failed (exit status "
            f"{status}); their messages are above",
            file=sys.stderr,
        )
        sys.exit(status)
    return None


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def shard(rows: torch.Tensor) -> torch.Tensor:
    """This process's slice of a global batch (contiguous; sizes differ by at most one)."""
    if not active():
        return rows
    return torch.tensor_split(rows, world_size())[rank()]


def rank_generator(generator: torch.Generator) -> torch.Generator:
    """The augmentation generator of this process: ``generator`` itself with one process."""
    if not active():
        return generator
    seed = (generator.initial_seed() * 1_000_003 + rank()) % (2**63)
    return torch.Generator(device=generator.device).manual_seed(seed)


class _Gather(torch.autograd.Function):
    """all_gather whose backward sends each process the gradient summed over all processes' losses."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.n = tensor.shape[0]
        return gather_no_grad(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[rank() * ctx.n : (rank() + 1) * ctx.n]


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's ``tensor`` (same shape) along dim 0, in rank order, with gradients.

    The backward is the all-reduced gradient: with the losses averaged by
    DDP, the parameters get the gradient of the global batch's loss.
    """
    return _Gather.apply(tensor) if active() else tensor


@torch.no_grad()
def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    if not active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s tensor on every process (in place)."""
    if active():
        dist.broadcast(tensor, src)
    return tensor


def broadcast_object(value, src: int = 0):
    """Rank ``src``'s picklable value on every process (decisions such as early stopping)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src)
    return box[0]


def gather_rows(compute: Callable[[slice], torch.Tensor], n: int) -> torch.Tensor:
    """``compute(rows)`` over ``n`` rows split across processes, returned whole on every process.

    Inference over val and test sets: each process scores a contiguous part.
    """
    if not active():
        return compute(slice(0, n))
    if n < world_size():
        raise ValueError(f"{n} rows cannot be split across {world_size()} processes")
    bounds = torch.linspace(0, n, world_size() + 1).round().long().tolist()
    mine = compute(slice(bounds[rank()], bounds[rank() + 1])).contiguous()
    width = max(b - a for a, b in zip(bounds, bounds[1:]))
    padded = mine.new_zeros((width, *mine.shape[1:]))
    padded[: len(mine)] = mine
    parts = gather_no_grad(padded).split(width)
    return torch.cat([part[: b - a] for part, a, b in zip(parts, bounds, bounds[1:])])


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm with statistics over the global batch, on any device and backend.

    torch's SyncBatchNorm runs only on GPUs; this one gathers per-process
    counts, means and squared deviations (with gradients) and so also runs
    on gloo CPU processes. With one process, or in eval mode, it is plain
    BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(input)
        x = input if input.dtype == torch.float64 else input.float()
        dims = [d for d in range(x.dim()) if d != 1]
        c = x.shape[1]
        shape = [1, c] + [1] * (x.dim() - 2)
        # per process: count, mean and sum of squared deviations (two passes, no cancellation), combined
        # across processes as in Chan et al.'s parallel variance; the gather carries the gradients back
        n_local = torch.full((1,), x.numel() / c, device=x.device)
        mean_local = x.sum(dims) / n_local.clamp(min=1)  # a process with an empty slice adds nothing
        m2_local = ((x - mean_local.view(shape)) ** 2).sum(dims)
        parts = gather(torch.cat([n_local, mean_local, m2_local]).unsqueeze(0))  # (W, 1 + 2C)
        counts, means, m2s = parts[:, :1], parts[:, 1 : c + 1], parts[:, c + 1 :]
        total = counts.sum()
        mean = (counts * means).sum(0) / total
        var = (m2s.sum(0) + (counts * (means - mean) ** 2).sum(0)) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                unbiased = var.detach() * total / (total - 1).clamp(min=1)
                self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """Every BatchNorm of ``module`` computing global-batch statistics (in place where possible).

    torch's SyncBatchNorm on CUDA, :class:`GlobalBatchNorm` elsewhere; with
    one process the module is returned unchanged.
    """
    if not active():
        return module
    if next(module.parameters()).is_cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        for parameter, old in zip(new.parameters(), module.parameters()):
            parameter.requires_grad_(old.requires_grad)
        return new
    for name, child in module.named_children():
        setattr(module, name, _convert(child))
    return module


class MappedRows:
    """Rows of a memory-mapped (N, S, S) uint8 store, read on demand, as a tensor-like (len, shape, indexing).

    Loading a split into memory would hold a private copy of it in every
    process (CheXpert's train split at 224 px: 9.6 GB; at 512 px more than
    most machines have). Read through the memory map, the store's pages sit
    once in the operating system's page cache, shared by every process and
    every stage, and given back under memory pressure.
    """

    def __init__(self, images: np.ndarray, rows: np.ndarray):
        self.images = images
        self.rows = np.asarray(rows)
        self.shape = (len(self.rows), *images.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        chosen = self.rows[index]
        return torch.from_numpy(np.asarray(self.images[np.atleast_1d(chosen)]))

    def split(self, size: int):
        return tuple(self[slice(start, start + size)] for start in range(0, len(self), size))


def load_images(store, rows: np.ndarray) -> MappedRows:
    """The store's images at ``rows``, read through its memory map batch by batch (:class:`MappedRows`).

    ``store`` is a :class:`cxrssl.data.store.ImageStore`.
    """
    return MappedRows(store.images, rows)


class LossModule(nn.Module):
    """Wraps a loss closure so that DistributedDataParallel's forward runs it.

    DDP syncs the gradients of the parameters its module owns; the closure
    must use ``model``'s modules, whose parameters these are.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[object], torch.Tensor]):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch) -> torch.Tensor:
        return self.loss_fn(batch)


def wrap(
    model: nn.Module, loss_fn: Callable[[object], torch.Tensor], device: torch.device
) -> Callable[[object], torch.Tensor]:
    """The loss to call in training: ``loss_fn`` itself, or through DDP over ``model`` with several processes.

    DDP broadcasts rank 0's weights and buffers at construction, and not
    the buffers afterwards (MoCo's queue is filled identically everywhere,
    SwAV's is per process, synchronised BatchNorm keeps equal statistics).
    """
    if not active():
        return loss_fn
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(LossModule(model, loss_fn), device_ids=ids, forward_sync_buffers=False)
