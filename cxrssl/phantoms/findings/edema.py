"""Edema: bilateral perihilar (bat-wing) haze; the vessels under it are blurred."""

from __future__ import annotations

import numpy as np

from cxrssl.phantoms.canvas import Canvas
from cxrssl.phantoms.draw import SIDES, ellipse, smooth_noise
from cxrssl.phantoms.findings.base import Finding, FindingSpec, LateralBlob
from cxrssl.phantoms.findings.lung_opacity import not_alone


def draw(f: Finding, canvas: Canvas, anat=None) -> None:
    """Bilateral perihilar (bat-wing) haze; vessels there get blurred."""
    rng = f.rng
    v = min(f.vis, 1.2)
    haze_total = np.zeros_like(canvas.opacity)
    for side in SIDES:
        layer = canvas.layer()
        pts = ellipse(
            side * 0.33, 0.52 + rng.normal(0, 0.02), 0.22 + 0.1 * v, 0.2 + 0.08 * v, side * rng.uniform(-15, 5)
        )
        canvas.fill(layer, pts)
        noise = smooth_noise(rng, layer.shape, 9, 0.6, 1.1)
        soft = canvas.add(f.label, layer, 0.15 + 0.6 * v, 0.09, noise)
        np.maximum(haze_total, soft, out=haze_total)
    canvas.haze = np.clip(haze_total * 2.0, 0.0, 1.0)


SPEC = FindingSpec(
    severity_shape=1.8, draw=draw, lateral_blob=LateralBlob(0.3, 0.4, 0.09, center=(0.0, 0.45)), lateral_shown=not_alone
)
