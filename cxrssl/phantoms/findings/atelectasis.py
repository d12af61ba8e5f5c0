"""Atelectasis: one hemidiaphragm raised, and a plate-like band or a basal collapse on that side."""

from __future__ import annotations

import cv2
import numpy as np

from cxrssl.phantoms.anatomy import Anatomy, AnatomyDraft
from cxrssl.phantoms.canvas import Canvas
from cxrssl.phantoms.draw import SHIFT, SIDES, union
from cxrssl.phantoms.findings.base import Finding, FindingSpec, LateralBlob
from cxrssl.phantoms.findings.lung_opacity import not_alone


def raise_dome(f: Finding, draft: AnatomyDraft) -> None:
    """Volume loss pulls one dome up; the band is drawn on that side."""
    side = SIDES[int(f.rng.integers(0, 2))]
    draft.domes[side] -= 0.03 + 0.08 * min(f.vis, 1.2)
    f.side = side


def draw(f: Finding, canvas: Canvas, anat: Anatomy) -> None:
    """Plate-like band or basal collapse on the side whose dome was raised."""
    rng = f.rng
    side = f.side
    v = min(f.vis, 1.2)
    dome = anat.domes[side]
    layer = canvas.layer()
    if rng.random() < 0.6:
        y = dome - rng.uniform(0.1, 0.25)
        x0, x1 = rng.uniform(0.25, 0.45), rng.uniform(0.65, 0.9)
        tilt = rng.normal(0.0, 0.03)
        pts = np.array([(side * x0, y - tilt), (side * x1, y + tilt)])
        thick = max(1, int(round(canvas.frame.length(0.025 + 0.03 * v, True))))
        cv2.polylines(layer, [canvas.frame.cv(pts, True)], False, 255, thick, cv2.LINE_8, SHIFT)
        density = 0.2 + 0.55 * v
    else:
        apex = (side * 0.2, 0.5)
        pts = np.array([apex, (side * (0.35 + 0.2 * v), dome + 0.02), (side * 0.05, dome + 0.06)])
        canvas.fill(layer, pts)
        density = 0.2 + 0.6 * v
    start = len(canvas.regions)
    canvas.add(f.label, layer, density, 0.03)
    base = np.array([(side * 0.95, anat.cps[side]), (side * 0.04, dome - 0.01), (side * 0.45, dome + 0.03 + 0.08 * v)])
    box = canvas.frame.box(base, pad=0.03)
    if len(canvas.regions) > start:
        _, old = canvas.regions.pop()
        box = union(old, box)
    canvas.regions.append((f.label, box))


SPEC = FindingSpec(
    severity_shape=1.1,
    shape_anatomy=raise_dome,
    draw=draw,
    lateral_blob=LateralBlob(0.08, 0.14, 0.02),
    lateral_shown=not_alone,
)
