"""Lung opacity: ill-defined patchy opacities, drawn only when no parenchymal finding shows it already.

CheXpert's "Lung Opacity" is the parent of the parenchymal findings. When one of them (edema,
consolidation, pneumonia, atelectasis, lesion) is drawn at least as certainly, no separate opacity
is drawn, and that finding's regions also count as the opacity's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cxrssl.phantoms.anatomy import Anatomy
from cxrssl.phantoms.canvas import Canvas, blob
from cxrssl.phantoms.draw import SIDES, smooth_noise
from cxrssl.phantoms.findings.base import Finding, FindingSpec, LateralBlob
from cxrssl.phantoms.patient import Region

#: The findings that are opacities of the lung themselves.
PARENCHYMAL: tuple[str, ...] = ("Edema", "Consolidation", "Pneumonia", "Atelectasis", "Lung Lesion")


def drawn_alone(plan: Mapping[str, Finding]) -> bool:
    """Whether "Lung Opacity" needs its own patches.

    It does unless a parenchymal finding at least as certain is drawn, whose
    regions then also count as the opacity's.
    """
    opacity = plan.get("Lung Opacity")
    if opacity is None:
        return False
    return not any(k in plan and (opacity.uncertain or not plan[k].uncertain) for k in PARENCHYMAL)


def not_alone(plan: Mapping[str, Finding]) -> bool:
    """The parenchymal findings show on a lateral view unless the opacity is drawn alone."""
    return not drawn_alone(plan)


def draw(f: Finding, canvas: Canvas, anat: Anatomy) -> None:
    """Ill-defined patchy opacities in one or both lungs."""
    rng = f.rng
    for _ in range(1 + int(rng.random() < 0.4)):
        side = SIDES[int(rng.integers(0, 2))]
        dome = anat.domes[side]
        cy = rng.uniform(0.25, dome - 0.1)
        box = np.array([(side * 0.3, cy - 0.12), (side * 0.85, cy + 0.12)])
        layer = canvas.layer()
        s = 0.6 + 0.4 * min(f.vis, 1.0)
        blob(rng, box, int(rng.integers(2, 5)), (0.08 * s, 0.17 * s), canvas, layer)
        noise = smooth_noise(rng, layer.shape, 6, 0.3, 1.15)
        canvas.add(f.label, layer, 0.12 + 0.65 * min(f.vis, 1.0), 0.06, noise)


def copied_regions(plan: Mapping[str, Finding], regions: list[Region]) -> list[Region]:
    """The parenchymal findings' regions, as the opacity's, when it is not drawn alone."""
    if "Lung Opacity" in plan and not drawn_alone(plan):
        return [Region("Lung Opacity", r.box) for r in regions if r.label in PARENCHYMAL]
    return []


SPEC = FindingSpec(
    severity_shape=0.8,
    shown=drawn_alone,
    draw=draw,
    derived_regions=copied_regions,
    lateral_blob=LateralBlob(0.1, 0.2, 0.05),
)
