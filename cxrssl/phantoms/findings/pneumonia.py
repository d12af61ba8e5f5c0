"""Pneumonia: patchy lobar opacities (consolidation's drawing, patchy)."""

from __future__ import annotations

from cxrssl.phantoms.anatomy import Anatomy
from cxrssl.phantoms.canvas import Canvas
from cxrssl.phantoms.findings.base import Finding, FindingSpec, LateralBlob
from cxrssl.phantoms.findings.consolidation import draw_lobar
from cxrssl.phantoms.findings.lung_opacity import not_alone


def draw(f: Finding, canvas: Canvas, anat: Anatomy) -> None:
    """Patchy, sometimes in two lobes."""
    draw_lobar(f, canvas, anat, patchy=True)


SPEC = FindingSpec(severity_shape=0.8, draw=draw, lateral_blob=LateralBlob(0.1, 0.2, 0.05), lateral_shown=not_alone)
