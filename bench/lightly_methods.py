"""The lightly library's implementation of each method, timed for bench.pretrain_throughput.

Built as lightly's documentation builds them (its transforms on PIL images in
a DataLoader, its heads, losses and momentum helpers), with the same 1-channel
backbone, batch, resolution, optimiser (AdamW), autocast and clipping as ours,
and grayscale-safe settings (no saturation, hue or random grayscale; the gray
channel normalised with the same statistics). Needs ``make bench-setup``
(lightly is a benchmark-only dependency).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from PIL import Image
from torch import nn

from cxrssl.methods import MIN_VIEW_SIZE
from cxrssl.models import build_backbone
from cxrssl.views import GRAY_MEAN, GRAY_STD

NORMALIZE = {"mean": [GRAY_MEAN], "std": [GRAY_STD]}


class _Images(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, transform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i], mode="L"))


def _transform(method: str, size: int, params: dict):
    from lightly.transforms import BYOLTransform, MoCoV2Transform, SimCLRTransform, SwaVTransform
    from lightly.transforms.byol_transform import BYOLView1Transform, BYOLView2Transform

    common = params["common"]
    colour = dict(
        cj_prob=0.8,
        cj_strength=1.0,
        cj_bright=common["brightness"],
        cj_contrast=common["contrast"],
        cj_sat=0.0,
        cj_hue=0.0,
        random_gray_scale=0.0,
        hf_prob=common["flip"],
        rr_prob=1.0,
        rr_degrees=common["rotation"],
        normalize=NORMALIZE,
    )
    if method == "simclr":
        return SimCLRTransform(input_size=size, min_scale=common["crop_scale_min"], **colour)
    if method == "moco":
        return MoCoV2Transform(input_size=size, min_scale=common["crop_scale_min"], **colour)
    if method == "byol":
        return BYOLTransform(
            BYOLView1Transform(input_size=size, min_scale=common["crop_scale_min"], **colour),
            BYOLView2Transform(input_size=size, min_scale=common["crop_scale_min"], **colour),
        )
    swav = params["swav"]
    local = max(MIN_VIEW_SIZE, round(size * swav["local_size_ratio"]))
    return SwaVTransform(
        crop_sizes=(size, local),
        crop_counts=(2, swav["n_local"]),
        crop_min_scales=(common["crop_scale_min"], common["local_crop_scale"][0]),
        crop_max_scales=(1.0, common["local_crop_scale"][1]),
        **colour,
    )


class _Model(nn.Module):
    """One method's networks and loss, lightly style."""

    def __init__(self, method: str, backbone_name: str, params: dict):
        super().__init__()
        from lightly import loss, models
        from lightly.models import modules

        self.method = method
        self.backbone, dim = build_backbone(backbone_name)
        p = params[method]
        if method == "simclr":
            self.head = modules.SimCLRProjectionHead(dim, p["hidden_dim"], p["dim"])
            self.criterion = loss.NTXentLoss(temperature=p["temperature"])
        elif method == "moco":
            self.head = modules.MoCoProjectionHead(dim, p["hidden_dim"], p["dim"])
            self.criterion = loss.NTXentLoss(temperature=p["temperature"], memory_bank_size=(p["queue_size"], p["dim"]))
        elif method == "byol":
            self.head = modules.BYOLProjectionHead(dim, p["hidden_dim"], p["dim"])
            self.predictor = modules.BYOLPredictionHead(p["dim"], p["hidden_dim"], p["dim"])
            self.criterion = loss.NegativeCosineSimilarity()
        else:
            self.head = modules.SwaVProjectionHead(dim, p["hidden_dim"], p["dim"])
            self.prototypes = modules.SwaVPrototypes(p["dim"], p["n_prototypes"], p["freeze_prototypes_steps"])
            self.criterion = loss.SwaVLoss(
                temperature=p["temperature"],
                sinkhorn_iterations=p["sinkhorn_iterations"],
                sinkhorn_epsilon=p["epsilon"],
            )
        if method in ("moco", "byol"):
            self.momentum_backbone = copy.deepcopy(self.backbone)
            self.momentum_head = copy.deepcopy(self.head)
            models.utils.deactivate_requires_grad(self.momentum_backbone)
            models.utils.deactivate_requires_grad(self.momentum_head)
        self.momentum = p.get("momentum", p.get("tau_base", 0.99))

    def loss(self, views: list[torch.Tensor], step: int) -> torch.Tensor:
        from lightly.models.utils import update_momentum

        if self.method == "simclr":
            z0, z1 = (self.head(self.backbone(v)) for v in views)
            return self.criterion(z0, z1)
        if self.method in ("moco", "byol"):
            update_momentum(self.backbone, self.momentum_backbone, self.momentum)
            update_momentum(self.head, self.momentum_head, self.momentum)
            with torch.no_grad():
                targets = [self.momentum_head(self.momentum_backbone(v)).detach() for v in views]
            if self.method == "moco":
                return self.criterion(self.head(self.backbone(views[0])), targets[1])
            p0, p1 = (self.predictor(self.head(self.backbone(v))) for v in views)
            return 0.5 * (self.criterion(p0, targets[1]) + self.criterion(p1, targets[0]))
        self.prototypes.normalize()
        features = [nn.functional.normalize(self.head(self.backbone(v)), dim=1) for v in views]
        scores = [self.prototypes(f, step) for f in features]
        return self.criterion(scores[:2], scores[2:])


def images_per_s(
    method: str, images: np.ndarray, params: dict, steps: int, workers: int, backbone: str | None = None
) -> float:
    """Training images/s of lightly's implementation over ``steps`` steps (after 2 warm-up steps)."""
    torch.manual_seed(0)
    common = params["common"]
    batch = common["batch_size"]
    model = _Model(method, backbone or common["backbone"], params)
    loader = torch.utils.data.DataLoader(
        _Images(images, _transform(method, images.shape[-1], params)),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
    )
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=common["lr"], weight_decay=common["weight_decay"]
    )
    device = torch.device("cpu")
    start, done = None, 0
    for step, views in enumerate(loader):
        if step == 2:
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=common["amp"]):
            loss = model.loss(views, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if common["grad_clip"] > 0:
            nn.utils.clip_grad_norm_(model.parameters(), common["grad_clip"])
        optimizer.step()
        if step >= 2:
            done += batch
        if step == steps + 1:
            break
    return done / (time.perf_counter() - start)
