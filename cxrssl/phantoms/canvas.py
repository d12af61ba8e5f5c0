"""The low-resolution canvas that opacity findings are drawn into, and the lobes they are placed in."""

from __future__ import annotations

import cv2
import numpy as np

from cxrssl.phantoms.draw import SHIFT, Frame, blur, ellipse, union


class Canvas:
    """Low-resolution finding layers plus the regions drawn so far."""

    def __init__(self, frame: Frame, lung_mask: np.ndarray):
        shape = (frame.lo_height, frame.lo_width)
        self.frame = frame
        self.lung_mask = lung_mask
        self.opacity = np.zeros(shape, np.float32)
        self.extra = np.zeros(shape, np.float32)
        self.haze: np.ndarray | None = None
        self.regions: list[tuple[str, tuple[float, float, float, float]]] = []
        self._drawn: tuple[float, float, float, float] | None = None

    def layer(self) -> np.ndarray:
        """A blank uint8 layer to draw one finding into."""
        return np.zeros_like(self.opacity, dtype=np.uint8)

    def fill(self, layer: np.ndarray, pts: np.ndarray) -> None:
        """Fills a thorax-coordinate polygon with 255, remembering its box."""
        cv2.fillPoly(layer, [self.frame.cv(pts, True)], 255, cv2.LINE_8, SHIFT)
        self._drawn = union(self._drawn, self.frame.box(pts))

    def add(
        self,
        label: str,
        layer: np.ndarray,
        density: float,
        sigma: float,
        noise: np.ndarray | None = None,
        in_lung: bool = True,
    ) -> np.ndarray:
        """Blurs a 0/255 layer, merges it into the opacity map, records its box.

        The box covers the part inside the lungs (where removing air shows)
        unless ``in_lung`` is false (findings that also add density outside).
        """
        soft = blur(layer.astype(np.float32) * (density / 255.0), self.frame.length(sigma, True))
        if noise is not None:
            soft *= noise
        np.maximum(self.opacity, soft, out=self.opacity)
        seen = soft > 0.06 * density
        if in_lung:
            seen &= self.lung_mask
        seen = seen.astype(np.uint8)
        box = self.frame.mask_box(seen)
        if box is None:  # too small or hidden to show: fall back to what was drawn
            box = self.frame.mask_box(layer) or self._drawn
        if box is not None:
            self.regions.append((label, box))
        self._drawn = None
        return soft


#: Lobe boxes (|x| range, y range as fractions between 0 and the dome).
LOBES: dict[str, tuple[int, tuple[float, float], tuple[float, float]]] = {
    "RUL": (-1, (0.2, 0.95), (0.08, 0.5)),
    "RML": (-1, (0.12, 0.6), (0.55, 1.0)),
    "RLL": (-1, (0.35, 0.98), (0.65, 1.05)),
    "LUL": (1, (0.2, 0.95), (0.08, 0.55)),
    "LING": (1, (0.25, 0.7), (0.55, 0.95)),
    "LLL": (1, (0.08, 0.95), (0.68, 1.05)),
}


def lobe_box(name: str, anat) -> np.ndarray:
    """A lobe's rectangle (4 points) in thorax coordinates."""
    side, (a0, a1), (f0, f1) = LOBES[name]
    dome = anat.domes[side]
    y0 = f0 * dome
    y1 = f1 * dome if f1 < 1.0 else dome + (f1 - 1.0) * 4.0
    return np.array([(side * a0, y0), (side * a1, y0), (side * a1, y1), (side * a0, y1)])


def blob(
    rng: np.random.Generator,
    box: np.ndarray,
    count: int,
    radius: tuple[float, float],
    canvas: Canvas,
    layer: np.ndarray,
) -> None:
    """Union of ``count`` random ellipses centred inside ``box``."""
    lo, hi = box.min(axis=0), box.max(axis=0)
    for _ in range(count):
        cx, cy = rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])
        rx = rng.uniform(*radius)
        pts = ellipse(cx, cy, rx, rx * rng.uniform(0.5, 1.0) / canvas.frame.aspect * 1.2, rng.uniform(-40, 40))
        canvas.fill(layer, pts)
