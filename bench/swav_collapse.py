"""Why SwAV collapsed at epsilon 0.05: the Sinkhorn codes' entropy and the embeddings' spread, step by step.

    python -m bench.swav_collapse [--optimizer adamw|sgd] [--steps 80] [--epsilon 0.05] [--prototypes 300]

Trains SwAV (2 global views, no small crops, prototypes frozen for 10 steps)
on batches of 128 train images at constant learning rate, and every 5 steps
prints the loss, the mean pairwise cosine of the prototypes, the spread of an
image's prototype scores, the entropy of the Sinkhorn codes H(q) and of the
predictions H(p) (log K when uniform), and the norm of the mean embedding
(1 when every embedding points the same way). The README's SwAV paragraph
quotes its output for epsilon 0.05, 0.02 and 0.01 (AdamW) and 0.05 (SGD).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace

import pandas as pd
import torch
import torch.nn.functional as F

from cxrssl.data.store import ImageStore
from cxrssl.methods import build_method
from cxrssl.methods.losses import sinkhorn
from cxrssl.methods.swav import SwAVConfig
from cxrssl.params import from_dict, read_params
from cxrssl.pretraining import PretrainConfig
from cxrssl.views import make_view, to_float


def entropy(p: torch.Tensor) -> float:
    return float(-(p * p.clamp_min(1e-12).log()).sum(1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--prototypes", type=int, default=300)
    parser.add_argument("--store", default="data/preprocessed")
    parser.add_argument("--train", default="data/splits/train.csv")
    args = parser.parse_args()
    torch.manual_seed(0)
    images = torch.from_numpy(ImageStore(args.store).load(pd.read_csv(args.train)["row"].to_numpy()))
    params = read_params()["pretrain"]
    config = replace(
        from_dict(SwAVConfig, "pretrain.swav", params["swav"]),
        epsilon=args.epsilon,
        n_prototypes=args.prototypes,
        dim=128,
        hidden_dim=2048,
        n_local=0,
        freeze_prototypes_steps=10,
    )
    augment = from_dict(PretrainConfig, "pretrain.common", params["common"]).augment()
    method = build_method("swav", "resnet18", images.shape[-1], config, augment, n_train=len(images))
    if args.optimizer == "adamw":
        optimizer = torch.optim.AdamW(method.parameters(), lr=1e-3, weight_decay=1e-4)
    else:
        optimizer = torch.optim.SGD(method.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-5)
    generator = torch.Generator().manual_seed(0)
    for step in range(args.steps):
        batch = to_float(images[torch.randint(len(images), (128,), generator=generator)])
        views = [make_view(batch, spec, generator) for spec in method.views]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = method.loss(views)
        optimizer.zero_grad()
        loss.backward()
        method.before_optimizer_step(step)
        optimizer.step()
        method.on_step(step, args.steps)
        if step % 5:
            continue
        with torch.no_grad():
            w = method.prototypes.weight
            cosine = (w @ w.T - torch.eye(len(w))).sum() / (len(w) * (len(w) - 1))
            z = F.normalize(method.projector(method.backbone(views[0])).float(), dim=1)
            scores = z @ w.T
            q, p = sinkhorn(scores, config.epsilon), F.softmax(scores / config.temperature, dim=1)
        spread = float(scores.std(1).mean())
        print(
            f"{step:3d} loss {loss.item():.4f} prototype_cos {cosine:.3f} score_std {spread:.4f} "
            f"H(q) {entropy(q):.3f} H(p) {entropy(p):.3f} |mean z| {float(z.mean(0).norm()):.3f} "
            f"log K {math.log(config.n_prototypes):.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
