"""Lung lesion: a round nodule or mass (1-6 cm) in a lung, away from the heart."""

from __future__ import annotations

import cv2
import numpy as np

from cxrssl.phantoms.anatomy import Anatomy
from cxrssl.phantoms.canvas import Canvas
from cxrssl.phantoms.draw import SIDES, round_outline
from cxrssl.phantoms.findings.base import Finding, FindingSpec, LateralBlob
from cxrssl.phantoms.findings.lung_opacity import not_alone


def draw(f: Finding, canvas: Canvas, anat: Anatomy) -> None:
    """A round nodule or mass (1-6 cm) somewhere in a lung, away from the heart."""
    rng = f.rng
    v = min(f.vis, 1.2)
    count = 1 + int(rng.random() < 0.15 * v)
    for _ in range(count):
        side = SIDES[int(rng.integers(0, 2))]
        diam_cm = 1.0 + 5.0 * min(v, 1.0) ** 1.2 * rng.uniform(0.6, 1.0)
        r = diam_cm / 30.0
        center = _lesion_center(rng, side, anat, r)
        wobble = 1.0 + 0.08 * np.sin(np.linspace(0, 2 * np.pi, 28, endpoint=False) * 3 + rng.uniform(0, 6.3))
        pts = round_outline(canvas.frame, center[0], center[1], r, wobble=wobble)
        layer = canvas.layer()
        canvas.fill(layer, pts)
        soft = canvas.add(f.label, layer, 0.25 + 0.7 * min(v, 1.0), 0.012, in_lung=False)
        canvas.extra += soft * 0.06


def _lesion_center(rng: np.random.Generator, side: int, anat: Anatomy, r: float) -> tuple:
    """A point inside the lung and clear of the heart (falls back to mid-lung)."""
    lung = anat.lungs[side].astype(np.float32)
    heart = anat.heart.astype(np.float32)
    for _ in range(12):
        p = (float(side * rng.uniform(0.3, 0.9)), float(rng.uniform(0.12, anat.domes[side] - 0.05)))
        inside = cv2.pointPolygonTest(lung, p, True) > r * 0.6
        if inside and cv2.pointPolygonTest(heart, p, True) < -r:
            return p
    return (side * 0.6, 0.4)


SPEC = FindingSpec(severity_shape=1.0, draw=draw, lateral_blob=LateralBlob(0.04, 0.12, 0.01), lateral_shown=not_alone)
