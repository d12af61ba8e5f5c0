"""Consolidation: a lobar or segmental opacity, confluent, often with air bronchograms (also drawn,
patchy, for pneumonia)."""

from __future__ import annotations

import cv2
import numpy as np

from cxrssl.phantoms.anatomy import Anatomy
from cxrssl.phantoms.canvas import LOBES, Canvas, blob, lobe_box
from cxrssl.phantoms.draw import SHIFT, smooth_noise
from cxrssl.phantoms.findings.base import Finding, FindingSpec, LateralBlob
from cxrssl.phantoms.findings.lung_opacity import not_alone


def draw_lobar(f: Finding, canvas: Canvas, anat: Anatomy, patchy: bool) -> None:
    """Lobar/segmental opacity; patchy (pneumonia) or confluent with bronchograms."""
    rng = f.rng
    names = list(LOBES)
    count = 1 + int((rng.random() < 0.3 * f.vis) and patchy)
    for name in rng.choice(names, size=count, replace=False):
        box = lobe_box(str(name), anat)
        layer = canvas.layer()
        n = int(rng.integers(4, 8) if patchy else rng.integers(3, 6))
        radius = (0.07, 0.16) if patchy else (0.12, 0.24)
        scale = 0.6 + 0.4 * min(f.vis, 1.0)
        blob(rng, box, n, (radius[0] * scale, radius[1] * scale), canvas, layer)
        if not patchy:
            mask = canvas.layer()
            canvas.fill(mask, box)
            cv2.bitwise_and(layer, mask, dst=layer)
        if patchy:
            density = 0.15 + 0.65 * min(f.vis, 1.0)
            noise = smooth_noise(rng, layer.shape, 7, 0.35, 1.2)
            soft = canvas.add(f.label, layer, density, 0.045, noise)
        else:
            density = 0.15 + 0.8 * min(f.vis, 1.0)
            soft = canvas.add(f.label, layer, density, 0.02)
            if rng.random() < 0.6:
                _bronchograms(rng, canvas, box, soft)


def _bronchograms(rng: np.random.Generator, canvas: Canvas, box: np.ndarray, soft: np.ndarray) -> None:
    """Dark branching air bronchograms inside a consolidation."""
    frame = canvas.frame
    side = 1 if box[:, 0].mean() > 0 else -1
    hilum = np.array([side * 0.2, 0.45])
    target = box.mean(axis=0)
    lines = canvas.layer()
    for _ in range(int(rng.integers(2, 5))):
        end = target + rng.normal(0.0, 0.12, 2)
        mid = (hilum + end) / 2 + rng.normal(0.0, 0.03, 2)
        pts = np.array([hilum, mid, end])
        cv2.polylines(
            lines, [frame.cv(pts, True)], False, 255, max(1, int(round(frame.length(0.025, True)))), cv2.LINE_8, SHIFT
        )
    gaps = lines.astype(np.float32) * (0.45 / 255.0) * soft
    canvas.opacity -= gaps


def draw(f: Finding, canvas: Canvas, anat: Anatomy) -> None:
    """Confluent, lobar."""
    draw_lobar(f, canvas, anat, patchy=False)


SPEC = FindingSpec(severity_shape=1.1, draw=draw, lateral_blob=LateralBlob(0.15, 0.25, 0.02), lateral_shown=not_alone)
