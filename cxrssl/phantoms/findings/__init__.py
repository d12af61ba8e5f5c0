"""The findings, one module each, and the table that says what each draws and in which order.

Each module holds one finding's whole story: how severe it is drawn, what it
changes in the anatomy, what it draws (frontal and lateral), and which
regions it reports. :data:`FINDINGS` lists them in the order they are drawn
into a frontal image: the order matters, since layers are summed in floating
point and regions are listed as they are drawn. :data:`LATERAL_ORDER` is the
order on a lateral view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from cxrssl.data.schema import CLASSES
from cxrssl.phantoms.findings import (
    atelectasis,
    cardiomegaly,
    consolidation,
    edema,
    enlarged_cardiomediastinum,
    fracture,
    lung_lesion,
    lung_opacity,
    pleural_effusion,
    pleural_other,
    pneumonia,
    pneumothorax,
    support_devices,
)
from cxrssl.phantoms.findings.base import Finding, FindingSpec, LateralBlob

FINDINGS: dict[str, FindingSpec] = {
    "Pleural Effusion": pleural_effusion.SPEC,
    "Edema": edema.SPEC,
    "Consolidation": consolidation.SPEC,
    "Pneumonia": pneumonia.SPEC,
    "Atelectasis": atelectasis.SPEC,
    "Lung Lesion": lung_lesion.SPEC,
    "Pleural Other": pleural_other.SPEC,
    "Pneumothorax": pneumothorax.SPEC,
    "Lung Opacity": lung_opacity.SPEC,
    "Fracture": fracture.SPEC,
    "Support Devices": support_devices.SPEC,
    "Cardiomegaly": cardiomegaly.SPEC,
    "Enlarged Cardiomediastinum": enlarged_cardiomediastinum.SPEC,
}

LATERAL_ORDER: tuple[str, ...] = (
    "Pleural Effusion",
    "Enlarged Cardiomediastinum",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Lung Lesion",
    "Edema",
    "Lung Opacity",
    "Support Devices",
)

#: Every class but "No Finding", in CheXpert's order: each gets its own random stream.
DRAWABLE: tuple[str, ...] = tuple(c for c in CLASSES if c != "No Finding")
#: The streams that are not a finding's.
STREAMS = ("pose", "noise", "extras")

__all__ = [
    "DRAWABLE",
    "FINDINGS",
    "LATERAL_ORDER",
    "Finding",
    "FindingSpec",
    "LateralBlob",
    "plan_findings",
    "stream_seeds",
]


def plan_findings(findings: Mapping[str, float], contrast: float, seeds: Mapping[str, int]) -> dict[str, Finding]:
    """Validates ``findings`` and draws each one's severity from its stream."""
    plan: dict[str, Finding] = {}
    for label, value in findings.items():
        if label not in CLASSES:
            raise ValueError(f"unknown finding {label!r}; expected one of {CLASSES}")
        value = float(value)
        if label == "No Finding" or value == 0.0 or math.isnan(value):
            continue
        rng = np.random.default_rng(seeds[label])
        uncertain = value < 0.0
        if uncertain:
            severity = 0.05 + 0.3 * rng.random()
        else:
            severity = 0.05 + 0.95 * rng.random() ** FINDINGS[label].severity_shape
        plan[label] = Finding(label, uncertain, min(severity * contrast, 1.5), rng)
    return plan


def stream_seeds(rng: np.random.Generator) -> dict[str, int]:
    """Draws a fixed number of seeds so that every stream is independent."""
    names = STREAMS + DRAWABLE
    values = rng.integers(0, 2**63 - 1, size=len(names))
    return {name: int(v) for name, v in zip(names, values)}
