"""Drawing primitives: thorax coordinates to pixels, outlines, blurs, tubes and smooth noise.

Geometry is described in *thorax coordinates*: ``x`` runs from -1 (the
patient's right inner chest wall, on the image's left) to +1 (patient's left,
image right) and ``y`` from 0 (lung apex) to 1 (costophrenic angles); values
outside those ranges reach the neck, shoulders and abdomen. One affine map per
image (patient size, positioning, rotation, magnification) takes thorax
coordinates to pixels (:class:`Frame`), so regions are exact after every
geometric transform.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from cxrssl.phantoms.patient import Patient, Pose

SHIFT = 4  # fixed-point bits for cv2 drawing


ONE = float(1 << SHIFT)


SIDES = (-1, 1)  # -1: patient's right (image left); +1: patient's left


SHARP_DENSITY = 0.7 / 255.0  # density of a full-value device/marker pixel


class Frame:
    """Maps thorax coordinates to pixels of the full- and low-resolution canvases.

    Pixel coordinates are continuous: pixel ``i`` covers ``[i, i + 1)``.
    """

    def __init__(self, matrix: np.ndarray, height: int, width: int, low: int, aspect: float, half_width_px: float):
        self.matrix = matrix
        self.height, self.width = height, width
        self.lo_height, self.lo_width = -(-height // low), -(-width // low)
        self.sx = self.lo_width / width
        self.sy = self.lo_height / height
        self.aspect = aspect  # thorax height over half width
        self.hw_px = half_width_px  # pixels per thorax x unit
        low_matrix = matrix * np.array([[self.sx], [self.sy]])
        self._fixed = {  # (linear part transposed, offset) in cv2 fixed point
            lo: (np.ascontiguousarray(m[:, :2].T * ONE), (m[:, 2] - 0.5) * ONE)
            for lo, m in ((False, matrix), (True, low_matrix))
        }

    def px(self, xy: np.ndarray) -> np.ndarray:
        """Thorax coordinates (n, 2) to continuous full-resolution pixels."""
        return xy @ self.matrix[:, :2].T + self.matrix[:, 2]

    def cv(self, xy: np.ndarray, low: bool = False) -> np.ndarray:
        """Thorax coordinates (..., 2) to cv2 fixed-point integer points."""
        lin, offset = self._fixed[low]
        p = np.asarray(xy, dtype=np.float64) @ lin
        p += offset
        return np.rint(p).astype(np.int32)

    def length(self, units: float, low: bool = False) -> float:
        """A length in thorax x units, in pixels."""
        return units * self.hw_px * (self.sx if low else 1.0)

    def box(self, xy: np.ndarray, pad: float = 0.0) -> tuple[float, float, float, float]:
        """Pixel bounding box of thorax points, padded by ``pad`` x units.

        A further 1.5 low-resolution pixels cover the blur applied after drawing.
        """
        p = self.px(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
        d = pad * self.hw_px + 1.5 / self.sx
        return (p[:, 0].min() - d, p[:, 1].min() - d, p[:, 0].max() + d, p[:, 1].max() + d)

    def mask_box(self, mask: np.ndarray, pad: float = 1.5) -> tuple[float, float, float, float] | None:
        """Pixel bounding box of a low-resolution mask's nonzero pixels.

        ``pad`` (low-resolution pixels) covers the blur applied after drawing.
        """
        x, y, w, h = cv2.boundingRect(mask)
        if w == 0 or h == 0:
            return None
        return ((x - pad) / self.sx, (y - pad) / self.sy, (x + w + pad) / self.sx, (y + h + pad) / self.sy)


def make_frame(patient: Patient, pose: Pose, height: int, width: int, depth_ratio: float = 1.0) -> Frame:
    """Builds the thorax-to-pixel map of one image."""
    unit = min(height, width)
    hw = patient.thorax_half_width * unit * pose.scale * depth_ratio
    th = patient.thorax_half_width * unit * pose.scale * patient.thorax_aspect
    cx = width / 2.0 + (patient.center_x + pose.dx) * unit
    cy = height * patient.center_y + pose.dy * unit
    a = math.radians(pose.rotation)
    c, s = math.cos(a), math.sin(a)
    lin = np.array([[c * hw, -s * th], [s * hw, c * th]])
    offset = np.array([cx, cy]) - lin @ np.array([0.0, 0.5])
    matrix = np.hstack([lin, offset[:, None]])
    low = 2 if unit <= 400 else int(math.ceil(unit / 200))
    return Frame(matrix, height, width, low, th / hw, hw)


def ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0, n: int = 28) -> np.ndarray:
    """Points of an ellipse in thorax coordinates (angle in degrees)."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


@lru_cache(maxsize=8)
def unit_circle(n: int) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1)
    circle.setflags(write=False)
    return circle


def round_outline(
    frame: Frame, cx: float, cy: float, r: float, n: int = 28, wobble: np.ndarray | None = None
) -> np.ndarray:
    """A circle of radius ``r`` x units that is round in pixels."""
    rad = r if wobble is None else (r * wobble)[:, None]
    return unit_circle(n) * rad * (1.0, 1.0 / frame.aspect) + (cx, cy)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones run on a downsampled copy (much faster)."""
    if sigma < 0.3:
        return img
    if sigma <= 4.0:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    step = int(sigma / 2.0)
    h, w = img.shape
    small = cv2.resize(img, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / step)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def union(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int, low: float, high: float) -> np.ndarray:
    """A smooth random field with values in [low, high]."""
    grid = rng.random((cells, cells)).astype(np.float32)
    field_ = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(low + (high - low) * field_, low, high)


def tube(frame: Frame, layer: np.ndarray, pts: np.ndarray, width: float, value: int, stripe: bool) -> None:
    """A tube (faint wall, optional radiopaque stripe) along a smoothed path."""
    path = smooth_path(pts)
    cv_pts = frame.cv(path)
    thick = max(1, int(round(frame.length(width))))
    if stripe:
        cv2.polylines(layer, [cv_pts], False, int(value * 0.45), thick, cv2.LINE_AA, SHIFT)
        thin = max(1, int(round(frame.length(width * 0.3))))
        cv2.polylines(layer, [cv_pts], False, value, thin, cv2.LINE_AA, SHIFT)
    else:
        cv2.polylines(layer, [cv_pts], False, value, thick, cv2.LINE_AA, SHIFT)


def smooth_path(pts: np.ndarray) -> np.ndarray:
    """Two rounds of Chaikin corner cutting: a smooth curve through a control polygon."""
    pts = np.asarray(pts, dtype=np.float64)
    for _ in range(2):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        pts = np.vstack([pts[:1], mid, pts[-1:]])
    return pts


def normalise_box(box, height: int, width: int):
    """Pixel box to a clipped [0, 1] box with a minimum size of one pixel."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = max(0.0, x0) / width, min(float(width), x1) / width
    y0, y1 = max(0.0, y0) / height, min(float(height), y1) / height
    if x1 <= x0 or y1 <= y0:
        return None
    return (round(x0, 5), round(y0, 5), round(x1, 5), round(y1, 5))
