"""A phantom patient's anatomy (drawn once per patient) and each image's positioning and exposure."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cxrssl.data.schema import SEX_VALUES


@dataclass(frozen=True)
class Patient:
    """Per-patient anatomy, fixed across all of that patient's studies.

    Lengths are in thorax units (see the module docstring) unless noted.

    Attributes:
        sex: "Male", "Female" or "Unknown" (as given to ``sample_patient``).
        age: Age in years.
        thorax_half_width: Half the inner thoracic width, as a fraction of
            ``min(height, width)`` of the image.
        thorax_aspect: Apex-to-costophrenic height over half width.
        center_x: Horizontal offset of the midline, fraction of ``min(h, w)``.
        center_y: Vertical position of the mid thorax, fraction of the height.
        ctr: Cardiothoracic ratio on a PA view (always < 0.5).
        heart_right_frac: Share of the heart's width right of the midline.
        heart_height: Vertical semi-axis of the cardiac silhouette.
        heart_tilt: Tilt of the cardiac axis in degrees (apex down-left).
        mediastinum_half_width: Half width of the upper mediastinum.
        aortic_knob: Bulge of the aortic knob beyond the mediastinum.
        dome_right: Height (y) of the right hemidiaphragm's dome.
        dome_left_drop: How much lower the left dome sits.
        rib_spacing: Relative spacing of the ribs.
        rib_width: Relative thickness of the ribs.
        bone_density: Multiplier of bone density (falls with age).
        soft_tissue: Multiplier of soft-tissue density (habitus).
        breast: Strength of breast shadows (0 for none).
        lung_air: Multiplier of lung aeration.
        spine_shift: Horizontal offset of the spine from the midline.
        vessel_seed: Seed of the patient's pulmonary vessel tree.
    """

    sex: str
    age: int
    thorax_half_width: float
    thorax_aspect: float
    center_x: float
    center_y: float
    ctr: float
    heart_right_frac: float
    heart_height: float
    heart_tilt: float
    mediastinum_half_width: float
    aortic_knob: float
    dome_right: float
    dome_left_drop: float
    rib_spacing: float
    rib_width: float
    bone_density: float
    soft_tissue: float
    breast: float
    lung_air: float
    spine_shift: float
    vessel_seed: int


@dataclass(frozen=True)
class Region:
    """Where one finding was drawn.

    Attributes:
        label: One of ``CLASSES``.
        box: ``(x0, y0, x1, y1)`` normalised to [0, 1] of the output image,
            x to the right and y down, with ``x0 < x1`` and ``y0 < y1``.
    """

    label: str
    box: tuple[float, float, float, float]


def clip(value: float, low: float, high: float) -> float:
    return float(min(max(value, low), high))


def sample_patient(rng: np.random.Generator, sex: str, age: int) -> Patient:
    """Draws one patient's anatomy.

    Args:
        rng: Source of all randomness.
        sex: "Male", "Female" or "Unknown"; shapes thorax size and breasts.
        age: Age in years (0 to 120; anything over 90 acts as 90); older
            patients get lower bone density, a larger aortic knob and a
            slightly larger heart.

    Returns:
        The patient's anatomy.

    Raises:
        ValueError: On an unknown sex or an age out of range.
    """
    if sex not in SEX_VALUES:
        raise ValueError(f"sex must be one of {SEX_VALUES}, got {sex!r}")
    if not 0 <= int(age) <= 120:
        raise ValueError(f"age must be in 0..120, got {age!r}")
    age = int(age)
    old = min(age, 90) / 90.0
    female = sex == "Female" or (sex == "Unknown" and rng.random() < 0.5)
    child = age < 14
    bone_loss = max(0.0, (min(age, 90) - 45) / 45.0) * (0.45 if female else 0.3)
    return Patient(
        sex=sex,
        age=age,
        thorax_half_width=clip(rng.normal(0.37 if female else 0.385, 0.015) - (0.02 if child else 0.0), 0.31, 0.43),
        thorax_aspect=clip(rng.normal(1.32 if child else 1.42, 0.07), 1.2, 1.65),
        center_x=float(rng.normal(0.0, 0.012)),
        center_y=clip(rng.normal(0.44, 0.015), 0.4, 0.48),
        ctr=clip(rng.normal(0.43 + 0.03 * old, 0.03), 0.35, 0.49),
        heart_right_frac=float(rng.uniform(0.28, 0.36)),
        heart_height=float(rng.uniform(0.26, 0.32)),
        heart_tilt=clip(rng.normal(14.0, 4.0), 4.0, 25.0),
        mediastinum_half_width=clip(rng.normal(0.13, 0.02), 0.09, 0.19),
        aortic_knob=clip(0.025 + 0.045 * old + rng.normal(0.0, 0.01), 0.01, 0.09),
        dome_right=clip(rng.normal(0.83, 0.025), 0.76, 0.9),
        dome_left_drop=float(rng.uniform(0.02, 0.06)),
        rib_spacing=clip(rng.normal(1.0, 0.04), 0.9, 1.1),
        rib_width=clip(rng.normal(1.0, 0.08), 0.8, 1.2),
        bone_density=clip((0.95 if female else 1.05) - bone_loss + rng.normal(0.0, 0.06), 0.45, 1.25),
        soft_tissue=clip(rng.normal(1.0, 0.08), 0.8, 1.25),
        breast=float(rng.uniform(0.3, 1.0)) if female and age >= 14 else 0.0,
        lung_air=clip(rng.normal(1.0, 0.06), 0.85, 1.15),
        spine_shift=float(rng.normal(0.0, 0.012)),
        vessel_seed=int(rng.integers(0, 2**31 - 1)),
    )


@dataclass(frozen=True)
class Pose:
    """Per-image positioning and exposure."""

    rotation: float
    scale: float
    dx: float
    dy: float
    dome_shift: float
    heart_mag: float
    clavicle_lift: float
    scapula: bool
    window_low: float
    window_width: float
    gamma: float
    noise: float
    mottle: float
    heel: tuple[float, float]
    blur: float
    soft_weight: float
    air_weight: float
    stomach_gas: float
    vessels: float
    marker: int
    electrodes: int
    collimation: tuple[float, float, float, float]


def sample_pose(rng: np.random.Generator, view: str) -> Pose:
    """Draws positioning and exposure for one image; AP views are worse."""
    ap = view == "AP"
    return Pose(
        rotation=clip(rng.normal(0.0, 3.5 if ap else 1.5), -9.0, 9.0),
        scale=clip(rng.normal(1.02 if ap else 1.0, 0.03), 0.9, 1.12),
        dx=float(rng.normal(0.0, 0.015)),
        dy=float(rng.normal(0.0, 0.015)),
        dome_shift=float(rng.normal(-0.05 if ap else 0.0, 0.02)),
        heart_mag=float(rng.uniform(1.06, 1.14) if ap else rng.uniform(0.98, 1.03)),
        clavicle_lift=float(rng.uniform(0.05, 0.15) if ap else rng.uniform(-0.03, 0.03)),
        scapula=bool(ap or rng.random() < 0.15),
        window_low=float(rng.normal(0.0, 0.035)),
        window_width=float(rng.uniform(0.85, 1.1) * (1.08 if ap else 1.0)),
        gamma=clip(math.exp(rng.normal(0.0, 0.13)), 0.75, 1.35),
        noise=float(rng.uniform(0.008, 0.022) * (1.5 if ap else 1.0)),
        mottle=float(rng.uniform(0.004, 0.018)),
        heel=(float(rng.normal(0.0, 0.03)), float(rng.normal(0.0, 0.03))),
        blur=float(rng.uniform(0.3, 0.9) * (1.3 if ap else 1.0)),
        soft_weight=float(0.6 * rng.uniform(0.92, 1.08)),
        air_weight=float(0.42 * rng.uniform(0.9, 1.1)),
        stomach_gas=float(rng.uniform(0.0, 0.35) if rng.random() < 0.75 else 0.0),
        vessels=float(rng.uniform(0.75, 1.35) * (1.1 if ap else 1.0)),
        marker=int(rng.integers(0, 4)) if rng.random() < 0.7 else -1,
        electrodes=int(rng.integers(2, 7)) if rng.random() < (0.6 if ap else 0.3) else 0,
        collimation=tuple(float(rng.uniform(0.01, 0.07)) if u < 0.12 else 0.0 for u in rng.random(4)),
    )
