"""What every finding is drawn with: its plan (severity, certainty, random stream) and its row in the table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass
class Finding:
    """One finding to draw in one image: its label, certainty, visibility and own random stream."""

    label: str
    uncertain: bool
    vis: float
    rng: np.random.Generator
    side: int = 0  # set by findings drawn on one side
    rim: np.ndarray | None = None  # pneumothorax: points bounding the air rim


@dataclass(frozen=True)
class LateralBlob:
    """How a parenchymal finding shows on a lateral view: a round opacity (radius from r0 to r1 with
    visibility, blurred by sigma), at ``center`` or at a random point of the lungs."""

    r0: float
    r1: float
    sigma: float
    center: tuple[float, float] | None = None


@dataclass(frozen=True)
class FindingSpec:
    """One finding's row in :data:`cxrssl.phantoms.findings.FINDINGS`: everything it draws, where and when.

    Attributes:
        severity_shape: ``k`` of the positive severity ``0.05 + 0.95 * u**k``:
            a large ``k`` puts many positives near normal (conspicuous findings
            such as cardiomegaly), a small one keeps subtle findings visible.
        shown: whether it is drawn at all in an image with this plan (default: always).
        shape_anatomy: changes the frontal anatomy before its outlines are drawn
            (domes, heart width, mediastinum) — ``(finding, draft)``.
        after_anatomy: changes the finished frontal anatomy (a collapsed lung) — ``(finding, anatomy)``.
        draw: draws into the low-resolution canvas and records its regions — ``(finding, canvas, anatomy)``.
        bones: plans what it does to the ribs (fractures) — ``(finding) -> list``.
        sharp: draws into the full-resolution layer and returns ``[(label, pixel box)]`` —
            ``(finding, frame, anatomy, layer)``.
        derived_regions: regions that follow from the others' — ``(plan, regions) -> regions``.
        lateral_heart: how much it enlarges the heart on a lateral view — ``(finding) -> factor``.
        lateral: draws into a lateral view's canvas — ``(finding, canvas, dome_r, dome_l)``.
        lateral_blob: or a :class:`LateralBlob` drawn the same way for every parenchymal finding.
        lateral_shown: whether it is drawn on a lateral view with this plan (default: ``shown``).
        lateral_sharp: draws into a lateral view's full-resolution layer, returns pixel boxes —
            ``(finding, frame, layer, dome_l)``.
    """

    severity_shape: float
    shown: Callable[[Mapping[str, Finding]], bool] | None = None
    shape_anatomy: Callable | None = None
    after_anatomy: Callable | None = None
    draw: Callable | None = None
    bones: Callable | None = None
    sharp: Callable | None = None
    derived_regions: Callable | None = None
    lateral_heart: Callable | None = None
    lateral: Callable | None = None
    lateral_blob: LateralBlob | None = None
    lateral_shown: Callable[[Mapping[str, Finding]], bool] | None = None
    lateral_sharp: Callable | None = None
