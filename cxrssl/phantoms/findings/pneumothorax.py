"""Pneumothorax: one lung's apical and lateral border pulled in, an air rim without lung markings outside
it, and the thin visceral pleural line (frontal views only)."""

from __future__ import annotations

import cv2
import numpy as np

from cxrssl.phantoms.anatomy import Anatomy
from cxrssl.phantoms.canvas import Canvas
from cxrssl.phantoms.draw import SHIFT, SIDES, Frame
from cxrssl.phantoms.findings.base import Finding, FindingSpec


def collapse_lung(ptx: Finding, anat: Anatomy) -> None:
    """Pulls one lung's apical/lateral border in, leaving a pleural air rim."""
    side = SIDES[int(ptx.rng.integers(0, 2))]
    gap = 0.03 + 0.2 * min(ptx.vis, 1.2) * ptx.rng.uniform(0.7, 1.0)
    outer = anat.outer[side]
    cp = anat.cps[side]
    x, y = np.abs(outer[:, 0]), outer[:, 1]
    weight = np.clip(1.1 - y / cp, 0.0, 1.0) ** 0.7 * np.clip((x - 0.1) / 0.25, 0.0, 1.0)
    center = np.array([side * 0.42, 0.62])
    direction = center - outer
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    moved = outer + (gap * weight)[:, None] * direction * np.array([1.0, 0.8])
    rest = anat.lungs[side][len(outer) :]
    anat.collapsed[side] = np.vstack([moved, rest])
    anat.pleural_line[side] = moved[weight > 0.08]
    ptx.side = side
    anat.rim_vis = ptx.vis
    ptx.rim = np.vstack([outer[weight > 0.08], moved[weight > 0.08]])


def record_region(f: Finding, canvas: Canvas, anat: Anatomy) -> None:
    """Records the air rim's box (the rim itself is drawn with the lungs)."""
    canvas.regions.append((f.label, canvas.frame.box(f.rim, pad=0.03)))


def pleural_line(ptx: Finding, frame: Frame, anat: Anatomy, sharp: np.ndarray) -> list:
    """The thin visceral pleural line of a pneumothorax."""
    line = anat.pleural_line[ptx.side]
    if len(line) < 2:
        return []
    thick = max(1, int(round(frame.length(0.012))))
    value = int(25 + 35 * min(ptx.vis, 1.0))
    cv2.polylines(sharp, [frame.cv(line)], False, value, thick, cv2.LINE_AA, SHIFT)
    return []


SPEC = FindingSpec(severity_shape=1.5, after_anatomy=collapse_lung, draw=record_region, sharp=pleural_line)
