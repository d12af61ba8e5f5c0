"""Pleural effusion: fluid at one or both bases, a blunted angle and a meniscus climbing laterally."""

from __future__ import annotations

import numpy as np

from cxrssl.phantoms.anatomy import Anatomy
from cxrssl.phantoms.canvas import Canvas
from cxrssl.phantoms.draw import SIDES
from cxrssl.phantoms.findings.base import Finding, FindingSpec


def draw(f: Finding, canvas: Canvas, anat: Anatomy) -> None:
    """Fluid at one or both bases: blunted angle, meniscus climbing laterally."""
    rng = f.rng
    both = rng.random() < (0.35 if not f.uncertain else 0.1)
    sides = SIDES if both else (SIDES[int(rng.integers(0, 2))],)
    for side in sides:
        v = min(f.vis, 1.2) * rng.uniform(0.7, 1.0)
        cp = anat.cps[side]
        y_lat = cp - (0.05 + 0.42 * v)
        y_med = max(y_lat + 0.1 + 0.1 * v, anat.domes[side] - 0.1 * v)
        a = np.linspace(0.02, 1.08, 14)
        y = y_med - (y_med - y_lat) * np.clip((a - 0.02) / 0.98, 0.0, 1.0) ** 1.8
        top = np.stack([side * a, y], axis=1)
        poly = np.vstack([top, [(side * 1.08, cp + 0.4), (side * 0.02, cp + 0.4)]])
        layer = canvas.layer()
        canvas.fill(layer, poly)
        canvas.add(f.label, layer, min(1.0, 0.35 + 0.65 * v), 0.025)


def lateral(f: Finding, canvas: Canvas, dome_r: float, dome_l: float) -> None:
    """Fluid in the posterior costophrenic sulcus."""
    v = min(f.vis, 1.2)
    cp = dome_l + 0.25
    x = np.linspace(-0.3, 0.95, 12)
    y = cp - (0.05 + 0.4 * v) * np.clip((x + 0.3) / 1.25, 0, 1) ** 1.5 + 0.02
    layer = canvas.layer()
    canvas.fill(layer, np.vstack([np.stack([x, y], 1), [(0.95, cp + 0.4), (-0.3, cp + 0.4)]]))
    canvas.add(f.label, layer, min(1.0, 0.35 + 0.65 * v), 0.025)


SPEC = FindingSpec(severity_shape=1.8, draw=draw, lateral=lateral)
