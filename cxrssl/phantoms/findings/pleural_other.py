"""Pleural other: pleural thickening along the lateral chest wall, or an apical cap (frontal views only)."""

from __future__ import annotations

import numpy as np

from cxrssl.phantoms.anatomy import Anatomy
from cxrssl.phantoms.canvas import Canvas
from cxrssl.phantoms.draw import SIDES
from cxrssl.phantoms.findings.base import Finding, FindingSpec


def draw(f: Finding, canvas: Canvas, anat: Anatomy) -> None:
    """Pleural thickening along the lateral chest wall, or an apical cap."""
    rng = f.rng
    v = min(f.vis, 1.2)
    side = SIDES[int(rng.integers(0, 2))]
    outer = anat.outer[side]
    thick = 0.035 + 0.07 * v
    if rng.random() < 0.6:
        y0 = rng.uniform(0.25, 0.45)
        y1 = rng.uniform(0.7, anat.cps[side] - 0.03)
        sel = outer[(outer[:, 1] >= y0) & (outer[:, 1] <= y1) & (np.abs(outer[:, 0]) > 0.8)]
        if len(sel) < 2:
            sel = outer[-5:-1]
        inner = sel - np.array([side * thick, 0.0])
    else:
        sel = outer[(outer[:, 1] < 0.3) & (np.abs(outer[:, 0]) > 0.15)]
        inner = sel + np.array([0.0, thick * 1.3])
    band = np.vstack([sel, inner[::-1]])
    layer = canvas.layer()
    canvas.fill(layer, band)
    soft = canvas.add(f.label, layer, 0.3 + 0.6 * min(v, 1.0), 0.012, in_lung=False)
    canvas.extra += soft * (0.14 + 0.12 * (rng.random() < 0.3))


SPEC = FindingSpec(severity_shape=0.8, draw=draw)
