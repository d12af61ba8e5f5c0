"""Support devices: endotracheal and nasogastric tubes, central lines, chest tubes and pacemakers."""

from __future__ import annotations

import cv2
import numpy as np

from cxrssl.phantoms.anatomy import Anatomy
from cxrssl.phantoms.draw import SHIFT, SIDES, Frame, round_outline, tube
from cxrssl.phantoms.findings.base import Finding, FindingSpec

_DEVICE_KINDS = ("ett", "ng", "cvc", "pacer", "tube")


def _device_paths(rng: np.random.Generator, kind: str, anat: Anatomy) -> list[np.ndarray]:
    """Control points of one device's parts (thorax coords)."""
    dome_l = anat.base_domes[1]
    if kind == "ett":
        tip = rng.uniform(0.05, 0.27)
        return [np.array([(-0.01, -2.5), (-0.015, -0.6), (-0.005, tip)])]
    if kind == "ng":
        return [
            np.array([(0.02, -2.5), (0.03, 0.3), (0.05, dome_l - 0.05), (0.25, dome_l + 0.2), (0.5, dome_l + 0.12)])
        ]
    if kind == "cvc":
        tip = (-0.09, rng.uniform(0.3, 0.5))
        if rng.random() < 0.5:
            return [np.array([(-0.35, -2.5), (-0.22, -0.5), (-0.12, 0.05), tip])]
        return [np.array([(1.3, -0.1), (0.6, -0.06), (0.15, 0.12), (-0.04, 0.25), tip])]
    if kind == "tube":
        s = SIDES[int(rng.integers(0, 2))]
        return [np.array([(s * 1.5, 1.05), (s * 1.05, 0.85), (s * 0.8, 0.5), (s * 0.6, 0.15)])]
    s = 1 if rng.random() < 0.8 else -1
    gx, gy = s * rng.uniform(0.5, 0.75), rng.uniform(-0.05, 0.08)
    return [
        np.array([(gx, gy), (s * 0.25, -0.05), (-0.1, 0.25), (-0.02, 0.6), (0.18, 0.78)]),
        np.array([(gx, gy), (s * 0.25, -0.02), (-0.1, 0.25), (-0.12, 0.55)]),
    ]


def draw(f: Finding, frame: Frame, anat: Anatomy, layer: np.ndarray) -> list:
    """Tubes, lines and pacemakers; returns one pixel box per device."""
    rng = f.rng
    count = 1 if f.uncertain else 1 + int(rng.random() < 0.5) + int(rng.random() < 0.2)
    kinds = rng.choice(len(_DEVICE_KINDS), size=count, replace=False, p=(0.3, 0.2, 0.25, 0.15, 0.1))
    strength = (0.35 + 0.6 * min(f.vis, 1.0)) * (0.6 if f.uncertain else 1.0)
    value = int(255 * min(1.0, strength))
    boxes = []
    for k in kinds:
        kind = _DEVICE_KINDS[int(k)]
        paths = _device_paths(rng, kind, anat)
        for path in paths:
            if kind in ("ett", "tube"):
                tube(frame, layer, path, 0.07, value, stripe=True)
            else:
                tube(frame, layer, path, 0.018, value, stripe=False)
        pts = np.vstack(paths)
        if kind == "pacer":
            box = round_outline(frame, pts[0, 0], pts[0, 1], 0.11, n=12)
            box = np.clip(box - pts[0], -0.09, 0.09) + pts[0]
            cv2.fillPoly(layer, [frame.cv(box)], value, cv2.LINE_AA, SHIFT)
            pts = np.vstack([pts, box])
        boxes.append((f.label, frame.box(pts, pad=0.04)))
    return boxes


def lateral(f: Finding, frame: Frame, sharp: np.ndarray, dome_l: float) -> list:
    """Endotracheal/nasogastric tubes and a pacemaker on a lateral view."""
    rng = f.rng
    value = int(255 * min(1.0, (0.5 + 0.5 * min(f.vis, 1.0)) * (0.6 if f.uncertain else 1.0)))
    options = [
        np.array([(-0.3, -2.5), (-0.18, -0.3), (-0.05, rng.uniform(0.05, 0.25))]),
        np.array([(-0.1, -2.5), (0.08, -0.3), (0.25, 0.5), (0.1, dome_l + 0.05), (-0.3, dome_l + 0.2)]),
        np.array([(-1.0, 0.0), (-0.4, 0.1), (-0.3, 0.5), (-0.5, dome_l - 0.1)]),
    ]
    count = 1 if f.uncertain else 1 + int(rng.random() < 0.4)
    boxes = []
    for k in rng.choice(len(options), size=count, replace=False):
        path = options[int(k)]
        tube(frame, sharp, path, 0.03, value, stripe=False)
        if int(k) == 2:
            gen = round_outline(frame, path[0, 0], path[0, 1], 0.1, n=12)
            cv2.fillPoly(sharp, [frame.cv(gen)], value, cv2.LINE_AA, SHIFT)
            path = np.vstack([path, gen])
        boxes.append(frame.box(path, pad=0.04))
    return boxes


SPEC = FindingSpec(severity_shape=1.8, sharp=draw, lateral_sharp=lateral)
