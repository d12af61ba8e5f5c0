"""Augmented views, computed on batches of tensors (on the CPU or the training device).

All geometric steps of one view (random resized crop, flip, small rotation)
are a single affine warp per image (``affine_grid`` + ``grid_sample``), so a
batch is augmented by a few tensor operations instead of a Python loop over
PIL images. Only grayscale-safe colour operations are used: brightness,
contrast, Gaussian blur and solarisation; there is no hue or saturation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: ImageNet mean and std averaged over RGB: what torchvision's RGB statistics are for a gray channel.
GRAY_MEAN, GRAY_STD = 0.449, 0.226


@dataclass(frozen=True)
class AugmentConfig:
    """params.yaml ``pretrain.common``'s augmentation keys, shared by all methods (grayscale-safe).

    Attributes:
        crop_scale_min: smallest crop area of the (global) random resized crops.
        local_crop_scale: crop area range of small crops (SwAV's multi-crop).
        flip, rotation, brightness, contrast: see :class:`ViewSpec`.
    """

    crop_scale_min: float
    local_crop_scale: tuple[float, float]
    flip: float
    rotation: float
    brightness: float
    contrast: float

    def view(self, size: int) -> ViewSpec:
        """The shared view each method's views are made from (:meth:`cxrssl.methods.base.Method.views_for`)."""
        return ViewSpec(
            size=size,
            scale=(self.crop_scale_min, 1.0),
            flip=self.flip,
            rotation=self.rotation,
            brightness=self.brightness,
            contrast=self.contrast,
        )


@dataclass(frozen=True)
class ViewSpec:
    """One view's augmentation recipe.

    Attributes:
        size: output side in pixels.
        scale: range of the crop's area as a fraction of the image.
        ratio: range of the crop's aspect ratio.
        flip: probability of a horizontal flip.
        rotation: maximum rotation in degrees (uniform in ±rotation).
        jitter: probability of brightness and contrast jitter.
        brightness: brightness factor drawn from [1 - b, 1 + b].
        contrast: contrast factor drawn from [1 - c, 1 + c].
        blur: probability of a Gaussian blur.
        blur_sigma: sigma range, as a fraction of ``size`` (SimCLR: 0.1–2.0 px at 224 px).
        solarize: probability of solarisation (x -> 1 - x above 0.5).
    """

    size: int
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    rotation: float = 10.0
    jitter: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    blur: float = 0.5
    blur_sigma: tuple[float, float] = (0.1 / 224, 2.0 / 224)
    solarize: float = 0.0


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high, generator=generator)


def _bernoulli(n: int, p: float, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, device=device, generator=generator) < p


def crop_flip_rotate(images: torch.Tensor, spec: ViewSpec, generator: torch.Generator) -> torch.Tensor:
    """Random resized crop, flip and rotation as one affine warp per image.

    Args:
        images: (N, 1, H, W) float images in [0, 1].

    Returns:
        (N, 1, size, size).
    """
    n, device = images.shape[0], images.device
    area = _uniform(n, *spec.scale, generator, device)
    log_ratio = _uniform(n, math.log(spec.ratio[0]), math.log(spec.ratio[1]), generator, device)
    ratio = torch.exp(log_ratio)
    width = torch.sqrt(area * ratio).clamp(max=1.0)  # fraction of the image's width
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = _uniform(n, -1.0, 1.0, generator, device) * (1 - width)  # centre in [-1, 1] coordinates
    cy = _uniform(n, -1.0, 1.0, generator, device) * (1 - height)
    angle = _uniform(n, -spec.rotation, spec.rotation, generator, device) * (math.pi / 180)
    flip = torch.where(_bernoulli(n, spec.flip, generator, device), -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [
            torch.stack([width * cos * flip, -height * sin, cx], dim=1),
            torch.stack([width * sin * flip, height * cos, cy], dim=1),
        ],
        dim=1,
    )  # (N, 2, 3): output grid -> input coordinates
    grid = F.affine_grid(theta, (n, 1, spec.size, spec.size), align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


def jitter(images: torch.Tensor, spec: ViewSpec, generator: torch.Generator) -> torch.Tensor:
    """Brightness and contrast jitter, per image, with probability ``spec.jitter``."""
    n, device = images.shape[0], images.device
    apply = _bernoulli(n, spec.jitter, generator, device)
    b = torch.where(apply, _uniform(n, 1 - spec.brightness, 1 + spec.brightness, generator, device), 1.0)
    c = torch.where(apply, _uniform(n, 1 - spec.contrast, 1 + spec.contrast, generator, device), 1.0)
    images = images * b.view(n, 1, 1, 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * c.view(n, 1, 1, 1) + mean).clamp(0, 1)


def gaussian_blur(images: torch.Tensor, spec: ViewSpec, generator: torch.Generator) -> torch.Tensor:
    """Gaussian blur with a per-image sigma, with probability ``spec.blur`` (separable, grouped conv)."""
    n, _, h, w = images.shape
    device = images.device
    apply = _bernoulli(n, spec.blur, generator, device)
    if spec.blur <= 0 or not bool(apply.any()):
        return images
    sigma = _uniform(n, spec.blur_sigma[0] * spec.size, spec.blur_sigma[1] * spec.size, generator, device)
    radius = max(1, math.ceil(3 * spec.blur_sigma[1] * spec.size))
    x = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-(x[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    identity = (x == 0).float().expand(n, -1)
    kernel = torch.where(apply[:, None], kernel, identity).to(images.dtype)  # (N, 2r+1)
    flat = images.reshape(1, n, h, w)
    padded = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, kernel.view(n, 1, 1, -1), groups=n)
    out = F.conv2d(out, kernel.view(n, 1, -1, 1), groups=n)
    return out.reshape(n, 1, h, w)


def solarize(images: torch.Tensor, spec: ViewSpec, generator: torch.Generator) -> torch.Tensor:
    """Invert pixels above 0.5, per image, with probability ``spec.solarize``."""
    if spec.solarize <= 0:
        return images
    apply = _bernoulli(images.shape[0], spec.solarize, generator, images.device).view(-1, 1, 1, 1)
    return torch.where(apply & (images >= 0.5), 1 - images, images)


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """(N, H, W) uint8 -> (N, 1, H, W) float in [0, 1]."""
    return batch.unsqueeze(1).float().div_(255.0)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation for a gray channel: done when batches are formed, never in the store."""
    return (images - GRAY_MEAN) / GRAY_STD


def make_view(images: torch.Tensor, spec: ViewSpec, generator: torch.Generator) -> torch.Tensor:
    """One augmented, normalised view of a batch.

    Args:
        images: (N, 1, H, W) float in [0, 1].
        spec: the view's recipe.
        generator: a torch.Generator on the images' device; the only randomness.

    Returns:
        (N, 1, spec.size, spec.size), normalised.
    """
    out = crop_flip_rotate(images, spec, generator)
    out = jitter(out, spec, generator)
    out = gaussian_blur(out, spec, generator)
    out = solarize(out, spec, generator)
    return normalize(out)
