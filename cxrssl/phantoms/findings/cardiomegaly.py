"""Cardiomegaly: an enlarged cardiac silhouette (cardiothoracic ratio over 0.5)."""

from __future__ import annotations

import numpy as np

from cxrssl.phantoms.anatomy import Anatomy, AnatomyDraft
from cxrssl.phantoms.draw import Frame
from cxrssl.phantoms.findings.base import Finding, FindingSpec


def enlarge(f: Finding, draft: AnatomyDraft) -> None:
    """A cardiothoracic ratio of 0.5-0.66 (uncertain: 0.47-0.59), never smaller than the patient's own."""
    target = (0.47 + 0.12 * f.vis) if f.uncertain else (0.5 + 0.16 * f.vis)
    draft.ctr = max(draft.ctr, target)


def region(f: Finding, frame: Frame, anat: Anatomy, layer: np.ndarray) -> list:
    """The heart's box above the lower dome (the visible silhouette)."""
    return [(f.label, visible_box(frame, anat.heart, anat))]


def visible_box(frame: Frame, poly: np.ndarray, anat: Anatomy):
    """Box of the part of a polygon above the lower dome (the visible heart)."""
    bottom = max(anat.domes.values()) + 0.08
    pts = poly[poly[:, 1] <= bottom]
    xs = poly[:, 0]
    pts = np.vstack([pts, [(xs.min(), bottom), (xs.max(), bottom)]])
    return frame.box(pts, pad=0.02)


def lateral_heart(f: Finding) -> float:
    """How much larger the heart is drawn on a lateral view."""
    return 1.05 + (0.05 if f.uncertain else 0.3) * f.vis


SPEC = FindingSpec(severity_shape=1.8, shape_anatomy=enlarge, sharp=region, lateral_heart=lateral_heart)
