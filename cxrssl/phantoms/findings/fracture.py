"""Fracture: one to three consecutive posterior ribs broken laterally, the distal end displaced, with or
without callus (frontal views only)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cxrssl.phantoms.draw import SHIFT, SIDES, Frame, round_outline
from cxrssl.phantoms.findings.base import Finding, FindingSpec


@dataclass
class Fracture:
    side: int
    rib: int
    t: float
    offset: float
    gap: float
    callus: float


def plan_fractures(f: Finding) -> list[Fracture]:
    """One to three fractures of consecutive posterior ribs, laterally."""
    rng = f.rng
    v = min(f.vis, 1.2)
    side = SIDES[int(rng.integers(0, 2))]
    first = int(rng.integers(3, 8))
    count = 1 + int(v > 0.6 and rng.random() < 0.6) + int(v > 0.85 and rng.random() < 0.5)
    t = rng.uniform(0.6, 0.9)
    callus = rng.random() < 0.85
    out = []
    for k in range(count):
        out.append(
            Fracture(
                side,
                first + k,
                t + rng.normal(0.0, 0.03),
                offset=(0.4 + 1.0 * v) * rng.choice([-1.0, 1.0]),
                gap=0.015 + 0.03 * v,
                callus=(1.4 + 2.2 * v) if callus else 0.0,
            )
        )
    return out


def split_rib(curve: np.ndarray, frac: Fracture, thick: float) -> list[np.ndarray]:
    """A rib centre line broken at ``frac.t``, its distal end displaced."""
    t = np.linspace(0.0, 1.0, len(curve))
    fine = np.linspace(0.0, 1.0, 60)
    pts = np.stack([np.interp(fine, t, curve[:, 0]), np.interp(fine, t, curve[:, 1])], axis=1)
    tangent = np.gradient(pts, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    taper = np.clip(1.0 - (fine - frac.t) / 0.1, 0.0, 1.0) * (fine > frac.t)
    shifted = pts + normal * (frac.offset * thick * taper)[:, None]
    proximal = pts[fine < frac.t - frac.gap]
    distal = shifted[fine > frac.t + frac.gap]
    return [p for p in (proximal, distal) if len(p) >= 2]


def fracture_box(frame: Frame, curve: np.ndarray, frac: Fracture, thick: float, bone: np.ndarray):
    """Draws a callus if any, and returns the pixel box around the fracture."""
    t = np.linspace(0.0, 1.0, len(curve))
    p = np.array([np.interp(frac.t, t, curve[:, 0]), np.interp(frac.t, t, curve[:, 1])])
    if frac.callus > 0:
        pts = round_outline(frame, p[0], p[1], frac.callus * thick * 0.9)
        pts[:, 1] = p[1] + (pts[:, 1] - p[1]) * 0.8
        cv2.fillPoly(bone, [frame.cv(pts)], 215, cv2.LINE_AA, SHIFT)
    half = np.array([0.12, 0.06 + abs(frac.offset) * thick + frac.callus * thick * 0.6])
    return frame.box(np.array([p - half, p + half]))


SPEC = FindingSpec(severity_shape=0.6, bones=plan_fractures)
