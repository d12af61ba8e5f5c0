"""Grad-CAM (Selvaraju et al. 2017) and HiResCAM (Draelos & Carin 2020) for the multi-label classifiers,
and how well their maps localise.

For class k and image x, with ``A`` the target layer's activations (C, h, w)
and ``y_k`` the raw logit of class k (before the sigmoid)::

    Grad-CAM:  alpha_kc = mean_ij d y_k / d A_cij      cam_k = ReLU(sum_c alpha_kc A_c)
    HiResCAM:                                          cam_k = ReLU(sum_c d y_k / d A_c * A_c)   (elementwise)

Grad-CAM averages each channel's gradient over the map before weighting, so a
location can light up because the channel matters somewhere else; HiResCAM
keeps the gradient where it is, so its map shows the locations that move the
logit (for a head right after the layer, both equal CAM). Maps are upsampled
bilinearly to the input's size for display and energy. Each image of a batch
has its own targets; the model runs in eval mode (batch norm on running
statistics), so images do not influence each other.

Localisation against a ground-truth region (the union of the finding's boxes):

* pointing game (Zhang et al. 2016): the map's maximum lies inside the
  region, with their tolerance (15 px at 224 px, 6.7% of the side). The
  maximum is taken on the map at its own resolution and placed at the centre
  of its cell: at 64 px the last block of a ResNet is 2 x 2, and an
  upsampled map's maximum would sit on the image's edge, not where the cell
  looks. A map that is zero everywhere is a miss.
* energy inside: the share of the upsampled map's sum that lies inside the
  region (0 for an empty map).

The centre prior is a fixed centred Gaussian map, scored the same way, so a
number means something: a model that looks at the middle of every image
scores exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxrssl.errors import ParamError
from cxrssl.models import last_conv_block
from cxrssl.params import require

#: params.yaml ``gradcam.method`` -> the name shown on the figures.
METHODS = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}

#: Classes whose phantom finding is a localised region: the ones localisation is scored on.
LOCALISED = (
    "Cardiomegaly",
    "Pleural Effusion",
    "Pneumothorax",
    "Lung Lesion",
    "Consolidation",
    "Fracture",
    "Support Devices",
)


@dataclass(frozen=True)
class GradcamConfig:
    """params.yaml ``gradcam``.

    Attributes:
        pct: the label percent whose classifiers are explained (one of ``label_percents``).
        method: "gradcam" or "hirescam" (see the module's docstring).
        layer: the target layer: "last" (the backbone's last convolutional
            block) or a module name inside the backbone, such as "layer3".
        per_class: overlays per class and init (a fixed, seeded choice of test
            images with that finding).
        seed: seeds that choice.
        batch_size: test images per Grad-CAM batch.
        tolerance: the pointing game's tolerance, as a share of the image side
            (Zhang et al.: 15 px at 224 px).
        center_sigma: the centre prior's standard deviation, as a share of the image side.
    """

    pct: int
    method: str
    layer: str
    per_class: int
    seed: int
    batch_size: int
    tolerance: float
    center_sigma: float

    def validate(self) -> None:
        require(1 <= self.pct <= 100, "gradcam.pct", self.pct, "a label percent in 1..100")
        require(self.method in METHODS, "gradcam.method", self.method, " or ".join(f'"{m}"' for m in METHODS))
        require(bool(self.layer), "gradcam.layer", self.layer, '"last" or a module name such as "layer3"')
        require(0 <= self.per_class <= 100, "gradcam.per_class", self.per_class, "0 to 100")
        require(self.seed >= 0, "gradcam.seed", self.seed, "a non-negative integer")
        require(self.batch_size >= 1, "gradcam.batch_size", self.batch_size, "a positive integer")
        require(0 <= self.tolerance <= 0.5, "gradcam.tolerance", self.tolerance, "a number in [0, 0.5]")
        require(0 < self.center_sigma <= 2, "gradcam.center_sigma", self.center_sigma, "a number in (0, 2]")


def target_layer(backbone: nn.Module, name: str) -> nn.Module:
    """The module to explain: ``"last"`` for the last convolutional block, else a submodule's name."""
    if name == "last":
        return last_conv_block(backbone)
    try:
        return backbone.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in backbone.named_children()]
        raise ParamError(
            f'params: gradcam.layer is {name!r}; expected "last" or a backbone module such as {", ".join(names)}'
        ) from None


def grad_cam(
    model: nn.Module, layer: nn.Module, images: torch.Tensor, targets: torch.Tensor, method: str = "gradcam"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM (or HiResCAM) maps of ``model`` at ``layer``.

    Args:
        model: maps (N, 1, H, W) to logits (N, classes); put in eval mode here.
        layer: a module inside ``model`` whose output (N, C, h, w) is explained.
        images: (N, 1, H, W), as the model takes them.
        targets: (N, T) class indices: T maps per image, each image its own classes.
        method: "gradcam" or "hirescam".

    Returns:
        Maps (N, T, h, w) >= 0 at the layer's resolution (not normalised; see
        :func:`upsample`) and the logits (N, classes), both detached. The hook
        on ``layer`` is removed before returning.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if targets.dim() != 2 or targets.shape[0] != images.shape[0]:
        raise ValueError(f"targets must be (N, T) with N = {images.shape[0]}, got {tuple(targets.shape)}")
    model.eval()
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        with torch.enable_grad():
            # the input asks for gradients so that the activations do, even when every weight is frozen
            logits = model(images.detach().requires_grad_(True))
            if len(captured) != 1:
                raise ValueError(f"the target layer ran {len(captured)} times in one forward pass; expected once")
            activations = captured[0]
            maps = []
            for t in range(targets.shape[1]):
                chosen = logits.gather(1, targets[:, t : t + 1].to(logits.device)).sum()
                (grads,) = torch.autograd.grad(chosen, activations, retain_graph=t + 1 < targets.shape[1])
                weights = grads.mean(dim=(2, 3), keepdim=True) if method == "gradcam" else grads
                maps.append(F.relu((weights * activations).sum(dim=1)).detach())
    finally:
        handle.remove()
    return torch.stack(maps, dim=1).float(), logits.detach()


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(..., h, w) maps -> (..., size, size), bilinear, still >= 0."""
    shape = maps.shape
    flat = maps.reshape(-1, 1, *shape[-2:])
    out = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False).clamp_(min=0)
    return out.reshape(*shape[:-2], size, size)


def box_mask(boxes: list[tuple[float, float, float, float]], size: int, margin: float = 0.0) -> np.ndarray:
    """(size, size) bool: the pixels touched by any box (x0, y0, x1, y1 as shares of width and height),
    each box grown by ``margin`` (a share of the side) on every side."""
    mask = np.zeros((size, size), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        x0, y0, x1, y1 = x0 - margin, y0 - margin, x1 + margin, y1 + margin
        c0, r0 = int(np.floor(x0 * size)), int(np.floor(y0 * size))
        c1, r1 = int(np.ceil(x1 * size)), int(np.ceil(y1 * size))
        mask[max(r0, 0) : min(max(r1, r0 + 1), size), max(c0, 0) : min(max(c1, c0 + 1), size)] = True
    return mask


def peaks(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 2) pixel (row, column) in a (size, size) image of the centre of each (h, w) map's largest cell."""
    h, w = maps.shape[-2:]
    peak = maps.flatten(1).argmax(dim=1)
    rows = ((peak // w).double() + 0.5) * size / h
    cols = ((peak % w).double() + 0.5) * size / w
    return torch.stack([rows, cols], dim=1).floor().long().clamp_(0, size - 1)


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the maximum of each (h, w) map, placed at its cell's centre, lies inside its (S, S) mask.
    An all-zero map is a miss."""
    point = peaks(maps, masks.shape[-1])
    inside = masks[torch.arange(len(masks)), point[:, 0], point[:, 1]]
    return inside & (maps.flatten(1).amax(dim=1) > 0)


def energy_inside(cams: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N,) the share of each map's sum inside its mask (0 for an all-zero map)."""
    total = cams.flatten(1).sum(dim=1)
    inside = (cams * masks).flatten(1).sum(dim=1)
    return torch.where(total > 0, inside / total.clamp(min=1e-12), torch.zeros_like(total))


def center_prior(size: int, sigma: float) -> torch.Tensor:
    """(size, size) centred Gaussian with standard deviation ``sigma`` × size."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    g = torch.exp(-0.5 * (coords / sigma) ** 2)
    return g[:, None] * g[None, :]


def overlay(image: np.ndarray, cam: np.ndarray | None, boxes: list, lines: list[str], scale: int = 4) -> np.ndarray:
    """A BGR picture for a reader: the radiograph with its ground-truth boxes (green), the same with the
    map over it (jet, normalised to its maximum), and text lines above. ``cam`` None shows the image only."""
    side = image.shape[0] * scale
    gray = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
    left = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    panels = [left]
    if cam is not None:
        peak = float(cam.max())
        heat = cv2.resize(
            (cam / peak if peak > 0 else cam).astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR
        )
        colour = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        panels.append(cv2.addWeighted(left, 0.55, colour, 0.45, 0))
    for panel in panels:
        for x0, y0, x1, y1 in boxes:
            cv2.rectangle(
                panel, (int(x0 * side), int(y0 * side)), (int(x1 * side) - 1, int(y1 * side) - 1), (0, 200, 0), 1
            )
    body = np.concatenate(panels, axis=1)
    header = np.full((16 * len(lines) + 6, body.shape[1], 3), 255, dtype=np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(header, line, (4, 16 * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, body], axis=0)
