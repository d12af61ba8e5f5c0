"""Enlarged cardiomediastinum: a widened upper mediastinum."""

from __future__ import annotations

import numpy as np

from cxrssl.phantoms.anatomy import Anatomy, AnatomyDraft
from cxrssl.phantoms.canvas import Canvas
from cxrssl.phantoms.draw import Frame, ellipse
from cxrssl.phantoms.findings.base import Finding, FindingSpec


def widen(f: Finding, draft: AnatomyDraft) -> None:
    """The mediastinum's outline pushed out by up to a fifth of the hemithorax."""
    draft.mediastinum_extra = 0.015 + 0.16 * min(f.vis, 1.2)


def region(f: Finding, frame: Frame, anat: Anatomy, layer: np.ndarray) -> list:
    """The upper mediastinum's box."""
    return [(f.label, upper_mediastinum_box(frame, anat))]


def upper_mediastinum_box(frame: Frame, anat: Anatomy):
    """Box of the upper mediastinum, from the lung apices to the heart."""
    pts = anat.mediastinum
    pts = pts[(pts[:, 1] >= -0.05) & (pts[:, 1] <= 0.5)]
    x0, x1 = pts[:, 0].min(), pts[:, 0].max()
    return frame.box(np.array([(x0, -0.05), (x1, 0.5)]), pad=0.02)


def lateral(f: Finding, canvas: Canvas, dome_r: float, dome_l: float) -> None:
    """A retrosternal density."""
    layer = canvas.layer()
    canvas.fill(layer, ellipse(-0.55, 0.25, 0.18 + 0.12 * f.vis, 0.22, 10))
    canvas.add(f.label, layer, 0.2 + 0.6 * min(f.vis, 1.0), 0.04)


SPEC = FindingSpec(severity_shape=1.6, shape_anatomy=widen, sharp=region, lateral=lateral)
