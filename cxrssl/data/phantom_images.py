"""Renderer of synthetic ("phantom") chest radiographs in CheXpert's image style.

The renderer draws a patient's anatomy and a set of CheXpert findings into a
grey-level radiograph, and reports where each finding was drawn. Geometry is
described in *thorax coordinates*: ``x`` runs from -1 (the patient's right inner
chest wall, on the image's left) to +1 (patient's left, image right) and ``y``
from 0 (lung apex) to 1 (costophrenic angles); values outside those ranges
reach the neck, shoulders and abdomen. One affine map per image (patient size,
positioning, rotation, magnification) takes thorax coordinates to pixels, so
regions are exact after every geometric transform.

Images are composed as a sum of densities (bright = dense): soft tissue minus
aerated lung, plus bone, vessels and high-density objects. Smooth layers are
drawn at half resolution and upsampled; sharp ones (ribs, vessels, tubes) at
full resolution. Each call splits ``rng`` into independent streams (pose,
noise, one per finding), so adding a finding never changes anything else in
the image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from cxrssl.data.schema import CLASSES, SEX_VALUES

#: Accepted values of ``render``'s ``view`` argument.
VIEWS: tuple[str, ...] = ("PA", "AP", "lateral")

_DRAWABLE: tuple[str, ...] = tuple(c for c in CLASSES if c != "No Finding")
_PARENCHYMAL: tuple[str, ...] = ("Edema", "Consolidation", "Pneumonia", "Atelectasis", "Lung Lesion")
_SHIFT = 4  # fixed-point bits for cv2 drawing
_ONE = float(1 << _SHIFT)
_SIDES = (-1, 1)  # -1: patient's right (image left); +1: patient's left
_STREAMS = ("pose", "noise", "extras")
_SHARP_DENSITY = 0.7 / 255.0  # density of a full-value device/marker pixel

#: Shape of each class's positive-severity distribution, ``0.05 + 0.95 * u**k``:
#: large ``k`` puts many positives near the normal range (conspicuous findings
#: such as cardiomegaly), small ``k`` keeps intrinsically subtle ones visible.
_SEVERITY_SHAPE: dict[str, float] = {
    "Enlarged Cardiomediastinum": 1.6,
    "Cardiomegaly": 1.8,
    "Lung Opacity": 0.8,
    "Lung Lesion": 1.0,
    "Edema": 1.8,
    "Consolidation": 1.1,
    "Pneumonia": 0.8,
    "Atelectasis": 1.1,
    "Pneumothorax": 1.5,
    "Pleural Effusion": 1.8,
    "Pleural Other": 0.8,
    "Fracture": 0.6,
    "Support Devices": 1.8,
}


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


def _clip(value: float, low: float, high: float) -> float:
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
        thorax_half_width=_clip(rng.normal(0.37 if female else 0.385, 0.015) - (0.02 if child else 0.0), 0.31, 0.43),
        thorax_aspect=_clip(rng.normal(1.32 if child else 1.42, 0.07), 1.2, 1.65),
        center_x=float(rng.normal(0.0, 0.012)),
        center_y=_clip(rng.normal(0.44, 0.015), 0.4, 0.48),
        ctr=_clip(rng.normal(0.43 + 0.03 * old, 0.03), 0.35, 0.49),
        heart_right_frac=float(rng.uniform(0.28, 0.36)),
        heart_height=float(rng.uniform(0.26, 0.32)),
        heart_tilt=_clip(rng.normal(14.0, 4.0), 4.0, 25.0),
        mediastinum_half_width=_clip(rng.normal(0.13, 0.02), 0.09, 0.19),
        aortic_knob=_clip(0.025 + 0.045 * old + rng.normal(0.0, 0.01), 0.01, 0.09),
        dome_right=_clip(rng.normal(0.83, 0.025), 0.76, 0.9),
        dome_left_drop=float(rng.uniform(0.02, 0.06)),
        rib_spacing=_clip(rng.normal(1.0, 0.04), 0.9, 1.1),
        rib_width=_clip(rng.normal(1.0, 0.08), 0.8, 1.2),
        bone_density=_clip((0.95 if female else 1.05) - bone_loss + rng.normal(0.0, 0.06), 0.45, 1.25),
        soft_tissue=_clip(rng.normal(1.0, 0.08), 0.8, 1.25),
        breast=float(rng.uniform(0.3, 1.0)) if female and age >= 14 else 0.0,
        lung_air=_clip(rng.normal(1.0, 0.06), 0.85, 1.15),
        spine_shift=float(rng.normal(0.0, 0.012)),
        vessel_seed=int(rng.integers(0, 2**31 - 1)),
    )


# --------------------------------------------------------------------------
# Per-image randomness: pose, exposure and one stream per finding.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pose:
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


def _sample_pose(rng: np.random.Generator, view: str) -> _Pose:
    """Draws positioning and exposure for one image; AP views are worse."""
    ap = view == "AP"
    return _Pose(
        rotation=_clip(rng.normal(0.0, 3.5 if ap else 1.5), -9.0, 9.0),
        scale=_clip(rng.normal(1.02 if ap else 1.0, 0.03), 0.9, 1.12),
        dx=float(rng.normal(0.0, 0.015)),
        dy=float(rng.normal(0.0, 0.015)),
        dome_shift=float(rng.normal(-0.05 if ap else 0.0, 0.02)),
        heart_mag=float(rng.uniform(1.06, 1.14) if ap else rng.uniform(0.98, 1.03)),
        clavicle_lift=float(rng.uniform(0.05, 0.15) if ap else rng.uniform(-0.03, 0.03)),
        scapula=bool(ap or rng.random() < 0.15),
        window_low=float(rng.normal(0.0, 0.035)),
        window_width=float(rng.uniform(0.85, 1.1) * (1.08 if ap else 1.0)),
        gamma=_clip(math.exp(rng.normal(0.0, 0.13)), 0.75, 1.35),
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


@dataclass
class _Finding:
    """One finding to draw: its label, certainty, visibility and own stream."""

    label: str
    uncertain: bool
    vis: float
    rng: np.random.Generator
    side: int = 0  # set by findings drawn on one side
    rim: np.ndarray | None = None  # pneumothorax: points bounding the air rim


def _plan_findings(findings: Mapping[str, float], contrast: float, seeds: Mapping[str, int]) -> dict[str, _Finding]:
    """Validates ``findings`` and draws each one's severity from its stream."""
    plan: dict[str, _Finding] = {}
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
            severity = 0.05 + 0.95 * rng.random() ** _SEVERITY_SHAPE[label]
        plan[label] = _Finding(label, uncertain, min(severity * contrast, 1.5), rng)
    return plan


def _stream_seeds(rng: np.random.Generator) -> dict[str, int]:
    """Draws a fixed number of seeds so that every stream is independent."""
    names = _STREAMS + _DRAWABLE
    values = rng.integers(0, 2**63 - 1, size=len(names))
    return {name: int(v) for name, v in zip(names, values)}


# --------------------------------------------------------------------------
# Geometry helpers.
# --------------------------------------------------------------------------


class _Frame:
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
            lo: (np.ascontiguousarray(m[:, :2].T * _ONE), (m[:, 2] - 0.5) * _ONE)
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


def _make_frame(patient: Patient, pose: _Pose, height: int, width: int, depth_ratio: float = 1.0) -> _Frame:
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
    return _Frame(matrix, height, width, low, th / hw, hw)


def _ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0, n: int = 28) -> np.ndarray:
    """Points of an ellipse in thorax coordinates (angle in degrees)."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


@lru_cache(maxsize=8)
def _unit_circle(n: int) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1)
    circle.setflags(write=False)
    return circle


def _round(frame: _Frame, cx: float, cy: float, r: float, n: int = 28, wobble: np.ndarray | None = None) -> np.ndarray:
    """A circle of radius ``r`` x units that is round in pixels."""
    rad = r if wobble is None else (r * wobble)[:, None]
    return _unit_circle(n) * rad * (1.0, 1.0 / frame.aspect) + (cx, cy)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
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


def _union(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


# --------------------------------------------------------------------------
# Frontal anatomy.
# --------------------------------------------------------------------------


@dataclass
class _Anatomy:
    """Frontal geometry of one image, after findings that move structures."""

    domes: dict[int, float]
    base_domes: dict[int, float]
    cps: dict[int, float]
    heart: np.ndarray
    heart_width: float
    mediastinum: np.ndarray
    lungs: dict[int, np.ndarray] = field(default_factory=dict)
    outer: dict[int, np.ndarray] = field(default_factory=dict)
    collapsed: dict[int, np.ndarray] = field(default_factory=dict)
    pleural_line: dict[int, np.ndarray] = field(default_factory=dict)


def _lung_parts(side: int, dome: float, cp: float) -> tuple[np.ndarray, np.ndarray]:
    """One lung's outline: (outer border medial apex->costophrenic angle, polygon)."""
    apex_x, medial_x, medial_y, widest = 0.45, 0.12, 0.35, 0.85
    ym = medial_y * np.linspace(1.0, 0.0, 8)[:-1] ** 2
    upper = np.stack([apex_x - (apex_x - medial_x) * np.sqrt(ym / medial_y), ym], axis=1)
    yl = cp * np.linspace(0.0, 1.0, 18) ** 1.6
    xl = np.where(
        yl < widest,
        apex_x + (1.0 - apex_x) * np.sqrt(np.clip(1.0 - (1.0 - yl / widest) ** 2, 0, 1)),
        1.0 - 0.04 * ((yl - widest) / max(cp - widest, 1e-3)) ** 2,
    )
    outer = np.vstack([upper, np.stack([xl, yl], axis=1)])
    dome_x, cp_x = 0.45, float(xl[-1])
    x1 = np.linspace(cp_x, dome_x, 8)[1:]
    lat = np.stack([x1, dome + (cp - dome) * ((x1 - dome_x) / (cp_x - dome_x)) ** 2], 1)
    x2 = np.linspace(dome_x, 0.04, 6)[1:]
    med = np.stack([x2, dome + 0.06 * ((dome_x - x2) / (dome_x - 0.04)) ** 2], 1)
    poly = np.vstack([outer, lat, med, [(0.06, medial_y + 0.05)]])
    sign = np.array([side, 1.0])
    return outer * sign, poly * sign


def _heart_polygon(width: float, right_frac: float, height: float, tilt: float, center_y: float) -> np.ndarray:
    """Cardiac silhouette whose horizontal extent is exactly ``width``."""
    t = np.linspace(0.0, 2.0 * np.pi, 36, endpoint=False)
    rr, rl = width * right_frac, width * (1.0 - right_frac)
    x = np.where(np.cos(t) > 0, rl, rr) * np.cos(t)
    y = height * np.sin(t)
    a = math.radians(tilt)
    xr = math.cos(a) * x - math.sin(a) * y
    yr = math.sin(a) * x + math.cos(a) * y
    xr *= width / (xr.max() - xr.min())
    shift = -(xr.max() + xr.min()) / 2.0 + (0.5 - right_frac) * width
    return np.stack([xr + shift, yr + center_y], axis=1)


def _mediastinum_polygon(half: float, knob: float, extra: float) -> np.ndarray:
    """Mediastinal outline; ``extra`` widens its upper part (y < 0.45)."""
    w = half + extra
    right = [(-0.3 - extra, -1.5), (-w, 0.0), (-w * 1.05, 0.3), (-half * 0.75, 0.48), (-0.05, 1.4)]
    left = [
        (0.05, 1.4),
        (half * 0.75, 0.48),
        (w + 0.02, 0.34),
        (w + 0.02 + knob, 0.25),
        (w + 0.02, 0.15),
        (w, 0.0),
        (0.3 + extra, -1.5),
    ]
    return np.array(right + left, dtype=np.float64)


def _build_anatomy(patient: Patient, pose: _Pose, plan: Mapping[str, _Finding]) -> _Anatomy:
    """Frontal geometry with the findings that change it applied."""
    domes = {-1: patient.dome_right + pose.dome_shift, 1: patient.dome_right + patient.dome_left_drop + pose.dome_shift}
    cps = {-1: 1.0, 1: 1.0 + patient.dome_left_drop * 0.5}
    base_domes = dict(domes)
    atel = plan.get("Atelectasis")
    if atel is not None:
        atel_side = _SIDES[int(atel.rng.integers(0, 2))]
        domes[atel_side] -= 0.03 + 0.08 * min(atel.vis, 1.2)
        atel.side = atel_side
    ctr = min(patient.ctr * pose.heart_mag, 0.49)
    cardio = plan.get("Cardiomegaly")
    if cardio is not None:
        target = (0.47 + 0.12 * cardio.vis) if cardio.uncertain else (0.5 + 0.16 * cardio.vis)
        ctr = max(ctr, target)
    height = patient.heart_height * (1.0 + 0.6 * max(0.0, ctr - 0.45))
    heart_y = base_domes[1] - 0.13
    heart = _heart_polygon(2.0 * ctr, patient.heart_right_frac, height, patient.heart_tilt, heart_y)
    ecm = plan.get("Enlarged Cardiomediastinum")
    extra = 0.0 if ecm is None else 0.015 + 0.16 * min(ecm.vis, 1.2)
    mediastinum = _mediastinum_polygon(patient.mediastinum_half_width, patient.aortic_knob, extra)
    anat = _Anatomy(domes, base_domes, cps, heart, 2.0 * ctr, mediastinum)
    for side in _SIDES:
        anat.outer[side], anat.lungs[side] = _lung_parts(side, domes[side], cps[side])
    ptx = plan.get("Pneumothorax")
    if ptx is not None:
        _collapse_lung(anat, ptx)
    return anat


def _collapse_lung(anat: _Anatomy, ptx: _Finding) -> None:
    """Pulls one lung's apical/lateral border in, leaving a pleural air rim."""
    side = _SIDES[int(ptx.rng.integers(0, 2))]
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
    ptx.rim = np.vstack([outer[weight > 0.08], moved[weight > 0.08]])


# --------------------------------------------------------------------------
# Low-resolution layers: soft tissue, air, opacities.
# --------------------------------------------------------------------------


def _body_polygon(scale: float) -> np.ndarray:
    """Outline of neck, shoulders and trunk (scaled about the midline)."""
    half = [
        (0.32, -2.5),
        (0.36, -0.5),
        (0.8, -0.36),
        (1.3, -0.26),
        (1.7, -0.1),
        (1.75, 0.3),
        (1.22, 0.42),
        (1.14, 0.75),
        (1.12, 1.15),
        (1.16, 1.6),
        (1.22, 3.0),
    ]
    pts = np.array(half)
    pts[:, 0] *= scale
    left = pts[::-1] * np.array([-1.0, 1.0])
    return np.vstack([left, pts])


def _soft_tissue(frame: _Frame, patient: Patient, anat: _Anatomy) -> np.ndarray:
    """Low-resolution soft-tissue thickness map (about 0..1.2)."""
    soft = np.zeros((frame.lo_height, frame.lo_width), np.float32)
    cv2.fillPoly(soft, [frame.cv(_body_polygon(1.0), True)], 0.7, cv2.LINE_8, _SHIFT)
    cv2.fillPoly(soft, [frame.cv(_body_polygon(0.88), True)], 1.0, cv2.LINE_8, _SHIFT)
    soft = _blur(soft, frame.length(0.07, True))
    extra = np.zeros_like(soft)
    if patient.breast > 0:
        for side in _SIDES:
            pts = _ellipse(side * 0.62, 0.98, 0.5, 0.3, side * -10.0)
            cv2.fillPoly(extra, [frame.cv(pts, True)], 0.18 * patient.breast, cv2.LINE_8, _SHIFT)
    domes = anat.base_domes
    liver = np.array([(-1.3, domes[-1] + 0.05), (-0.4, domes[-1]), (0.3, domes[1] + 0.15), (0.3, 2.5), (-1.3, 2.5)])
    cv2.fillPoly(extra, [frame.cv(liver, True)], 0.08, cv2.LINE_8, _SHIFT)
    soft += _blur(extra, frame.length(0.1, True))
    return soft


def _air_layers(
    frame: _Frame, anat: _Anatomy, pose: _Pose, plan: Mapping[str, _Finding]
) -> tuple[np.ndarray, np.ndarray]:
    """Aerated lung (darkening) and visible parenchyma (where vessels show)."""
    shape = (frame.lo_height, frame.lo_width)
    air = np.zeros(shape, np.float32)
    par = np.zeros(shape, np.float32)
    ptx = plan.get("Pneumothorax")
    for side in _SIDES:
        pts = frame.cv(anat.lungs[side], True)
        if side in anat.collapsed:
            rim_air = 1.1 + 0.2 * min(ptx.vis, 1.0)
            cv2.fillPoly(air, [pts], rim_air, cv2.LINE_8, _SHIFT)
            inner = frame.cv(anat.collapsed[side], True)
            cv2.fillPoly(air, [inner], 1.0 - 0.1 * min(ptx.vis, 1.0), cv2.LINE_8, _SHIFT)
            cv2.fillPoly(par, [inner], 1.0, cv2.LINE_8, _SHIFT)
        else:
            cv2.fillPoly(air, [pts], 1.0, cv2.LINE_8, _SHIFT)
            cv2.fillPoly(par, [pts], 1.0, cv2.LINE_8, _SHIFT)
    depth = _blur((air > 0).astype(np.float32), frame.length(0.16, True))
    air *= 0.35 + 0.65 * np.minimum(depth * 1.5, 1.0)
    factor = np.ones(shape, np.float32)
    cv2.fillPoly(factor, [frame.cv(anat.heart, True)], 0.12, cv2.LINE_8, _SHIFT)
    cv2.fillPoly(factor, [frame.cv(anat.mediastinum, True)], 0.0, cv2.LINE_8, _SHIFT)
    air *= factor
    par *= factor
    _airways(frame, air, anat, pose)
    return air, par


def _airways(frame: _Frame, air: np.ndarray, anat: _Anatomy, pose: _Pose) -> None:
    """Trachea, main bronchi and the gastric bubble, painted into ``air``."""
    trachea = np.array([(-0.01, -2.0), (-0.01, -0.3), (0.0, 0.32)])
    width = max(1, int(round(frame.length(0.075, True))))
    cv2.polylines(air, [frame.cv(trachea, True)], False, 0.38, width, cv2.LINE_8, _SHIFT)
    bronchi = [np.array([(0.0, 0.32), (-0.14, 0.42)]), np.array([(0.0, 0.32), (0.14, 0.39)])]
    width = max(1, int(round(frame.length(0.05, True))))
    cv2.polylines(air, [frame.cv(b, True) for b in bronchi], False, 0.3, width, cv2.LINE_8, _SHIFT)
    if pose.stomach_gas > 0:
        gas = _ellipse(0.42, anat.base_domes[1] + 0.1, 0.16, 0.055)
        cv2.fillPoly(air, [frame.cv(gas, True)], pose.stomach_gas, cv2.LINE_8, _SHIFT)


def _hila(frame: _Frame, extra: np.ndarray) -> None:
    """Hilar vascular density."""
    for side, y in ((-1, 0.46), (1, 0.42)):
        pts = _ellipse(side * 0.2, y, 0.07, 0.06)
        cv2.fillPoly(extra, [frame.cv(pts, True)], 0.07, cv2.LINE_8, _SHIFT)


# --------------------------------------------------------------------------
# Opacity findings (drawn at low resolution into an opacity map).
# --------------------------------------------------------------------------


class _Canvas:
    """Low-resolution finding layers plus the regions drawn so far."""

    def __init__(self, frame: _Frame, lung_mask: np.ndarray):
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
        cv2.fillPoly(layer, [self.frame.cv(pts, True)], 255, cv2.LINE_8, _SHIFT)
        self._drawn = _union(self._drawn, self.frame.box(pts))

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
        soft = _blur(layer.astype(np.float32) * (density / 255.0), self.frame.length(sigma, True))
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


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int, low: float, high: float) -> np.ndarray:
    """A smooth random field with values in [low, high]."""
    grid = rng.random((cells, cells)).astype(np.float32)
    field_ = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(low + (high - low) * field_, low, high)


#: Lobe boxes (|x| range, y range as fractions between 0 and the dome).
_LOBES: dict[str, tuple[int, tuple[float, float], tuple[float, float]]] = {
    "RUL": (-1, (0.2, 0.95), (0.08, 0.5)),
    "RML": (-1, (0.12, 0.6), (0.55, 1.0)),
    "RLL": (-1, (0.35, 0.98), (0.65, 1.05)),
    "LUL": (1, (0.2, 0.95), (0.08, 0.55)),
    "LING": (1, (0.25, 0.7), (0.55, 0.95)),
    "LLL": (1, (0.08, 0.95), (0.68, 1.05)),
}


def _lobe_box(name: str, anat: _Anatomy) -> np.ndarray:
    """A lobe's rectangle (4 points) in thorax coordinates."""
    side, (a0, a1), (f0, f1) = _LOBES[name]
    dome = anat.domes[side]
    y0 = f0 * dome
    y1 = f1 * dome if f1 < 1.0 else dome + (f1 - 1.0) * 4.0
    return np.array([(side * a0, y0), (side * a1, y0), (side * a1, y1), (side * a0, y1)])


def _blob(
    rng: np.random.Generator,
    box: np.ndarray,
    count: int,
    radius: tuple[float, float],
    canvas: _Canvas,
    layer: np.ndarray,
) -> None:
    """Union of ``count`` random ellipses centred inside ``box``."""
    lo, hi = box.min(axis=0), box.max(axis=0)
    for _ in range(count):
        cx, cy = rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])
        rx = rng.uniform(*radius)
        pts = _ellipse(cx, cy, rx, rx * rng.uniform(0.5, 1.0) / canvas.frame.aspect * 1.2, rng.uniform(-40, 40))
        canvas.fill(layer, pts)


def _draw_consolidation(f: _Finding, canvas: _Canvas, anat: _Anatomy, patchy: bool) -> None:
    """Lobar/segmental opacity; patchy (pneumonia) or confluent with bronchograms."""
    rng = f.rng
    names = list(_LOBES)
    count = 1 + int((rng.random() < 0.3 * f.vis) and patchy)
    for name in rng.choice(names, size=count, replace=False):
        box = _lobe_box(str(name), anat)
        layer = canvas.layer()
        n = int(rng.integers(4, 8) if patchy else rng.integers(3, 6))
        radius = (0.07, 0.16) if patchy else (0.12, 0.24)
        scale = 0.6 + 0.4 * min(f.vis, 1.0)
        _blob(rng, box, n, (radius[0] * scale, radius[1] * scale), canvas, layer)
        if not patchy:
            mask = canvas.layer()
            canvas.fill(mask, box)
            cv2.bitwise_and(layer, mask, dst=layer)
        if patchy:
            density = 0.15 + 0.65 * min(f.vis, 1.0)
            noise = _smooth_noise(rng, layer.shape, 7, 0.35, 1.2)
            soft = canvas.add(f.label, layer, density, 0.045, noise)
        else:
            density = 0.15 + 0.8 * min(f.vis, 1.0)
            soft = canvas.add(f.label, layer, density, 0.02)
            if rng.random() < 0.6:
                _bronchograms(rng, canvas, box, soft)


def _bronchograms(rng: np.random.Generator, canvas: _Canvas, box: np.ndarray, soft: np.ndarray) -> None:
    """Dark branching air bronchograms inside a consolidation."""
    frame = canvas.frame
    side = 1 if box[:, 0].mean() > 0 else -1
    hilum = np.array([side * 0.2, 0.45])
    target = box.mean(axis=0)
    lines = canvas.layer()
    for _ in range(int(rng.integers(2, 5))):
        end = target + rng.normal(0.0, 0.12, 2)
        mid = (hilum + end) / 2 + rng.normal(0.0, 0.03, 2)
        pts = np.array([hilum, mid, end])
        cv2.polylines(
            lines, [frame.cv(pts, True)], False, 255, max(1, int(round(frame.length(0.025, True)))), cv2.LINE_8, _SHIFT
        )
    gaps = lines.astype(np.float32) * (0.45 / 255.0) * soft
    canvas.opacity -= gaps


def _draw_lung_opacity(f: _Finding, canvas: _Canvas, anat: _Anatomy) -> None:
    """Ill-defined patchy opacities in one or both lungs."""
    rng = f.rng
    for _ in range(1 + int(rng.random() < 0.4)):
        side = _SIDES[int(rng.integers(0, 2))]
        dome = anat.domes[side]
        cy = rng.uniform(0.25, dome - 0.1)
        box = np.array([(side * 0.3, cy - 0.12), (side * 0.85, cy + 0.12)])
        layer = canvas.layer()
        s = 0.6 + 0.4 * min(f.vis, 1.0)
        _blob(rng, box, int(rng.integers(2, 5)), (0.08 * s, 0.17 * s), canvas, layer)
        noise = _smooth_noise(rng, layer.shape, 6, 0.3, 1.15)
        canvas.add(f.label, layer, 0.12 + 0.65 * min(f.vis, 1.0), 0.06, noise)


def _draw_edema(f: _Finding, canvas: _Canvas) -> None:
    """Bilateral perihilar (bat-wing) haze; vessels there get blurred."""
    rng = f.rng
    v = min(f.vis, 1.2)
    haze_total = np.zeros_like(canvas.opacity)
    for side in _SIDES:
        layer = canvas.layer()
        pts = _ellipse(
            side * 0.33, 0.52 + rng.normal(0, 0.02), 0.22 + 0.1 * v, 0.2 + 0.08 * v, side * rng.uniform(-15, 5)
        )
        canvas.fill(layer, pts)
        noise = _smooth_noise(rng, layer.shape, 9, 0.6, 1.1)
        soft = canvas.add(f.label, layer, 0.15 + 0.6 * v, 0.09, noise)
        np.maximum(haze_total, soft, out=haze_total)
    canvas.haze = np.clip(haze_total * 2.0, 0.0, 1.0)


def _draw_effusion(f: _Finding, canvas: _Canvas, anat: _Anatomy) -> None:
    """Fluid at one or both bases: blunted angle, meniscus climbing laterally."""
    rng = f.rng
    both = rng.random() < (0.35 if not f.uncertain else 0.1)
    sides = _SIDES if both else (_SIDES[int(rng.integers(0, 2))],)
    for side in sides:
        v = min(f.vis, 1.2) * rng.uniform(0.7, 1.0)
        cp = anat.cps[side]
        y_lat = cp - (0.05 + 0.42 * v)
        y_med = max(y_lat + 0.1 + 0.1 * v, anat.domes[side] - 0.1 * v)
        a = np.linspace(0.02, 1.08, 14)
        y = y_med - (y_med - y_lat) * np.clip((a - 0.02) / 0.98, 0.0, 1.0) ** 1.8
        top = np.stack([side * a, y], axis=1)
        poly = np.vstack([top, [(side * 1.08, cp + 0.4), (side * 0.02, cp + 0.4)]])
        layer = canvas.layer()
        canvas.fill(layer, poly)
        canvas.add(f.label, layer, min(1.0, 0.35 + 0.65 * v), 0.025)


def _draw_atelectasis(f: _Finding, canvas: _Canvas, anat: _Anatomy) -> None:
    """Plate-like band or basal collapse on the side whose dome was raised."""
    rng = f.rng
    side = f.side
    v = min(f.vis, 1.2)
    dome = anat.domes[side]
    layer = canvas.layer()
    if rng.random() < 0.6:
        y = dome - rng.uniform(0.1, 0.25)
        x0, x1 = rng.uniform(0.25, 0.45), rng.uniform(0.65, 0.9)
        tilt = rng.normal(0.0, 0.03)
        pts = np.array([(side * x0, y - tilt), (side * x1, y + tilt)])
        thick = max(1, int(round(canvas.frame.length(0.025 + 0.03 * v, True))))
        cv2.polylines(layer, [canvas.frame.cv(pts, True)], False, 255, thick, cv2.LINE_8, _SHIFT)
        density = 0.2 + 0.55 * v
    else:
        apex = (side * 0.2, 0.5)
        pts = np.array([apex, (side * (0.35 + 0.2 * v), dome + 0.02), (side * 0.05, dome + 0.06)])
        canvas.fill(layer, pts)
        density = 0.2 + 0.6 * v
    start = len(canvas.regions)
    canvas.add(f.label, layer, density, 0.03)
    base = np.array([(side * 0.95, anat.cps[side]), (side * 0.04, dome - 0.01), (side * 0.45, dome + 0.03 + 0.08 * v)])
    box = canvas.frame.box(base, pad=0.03)
    if len(canvas.regions) > start:
        _, old = canvas.regions.pop()
        box = _union(old, box)
    canvas.regions.append((f.label, box))


def _draw_lesion(f: _Finding, canvas: _Canvas, anat: _Anatomy) -> None:
    """A round nodule or mass (1-6 cm) somewhere in a lung, away from the heart."""
    rng = f.rng
    v = min(f.vis, 1.2)
    count = 1 + int(rng.random() < 0.15 * v)
    for _ in range(count):
        side = _SIDES[int(rng.integers(0, 2))]
        diam_cm = 1.0 + 5.0 * min(v, 1.0) ** 1.2 * rng.uniform(0.6, 1.0)
        r = diam_cm / 30.0
        center = _lesion_center(rng, side, anat, r)
        wobble = 1.0 + 0.08 * np.sin(np.linspace(0, 2 * np.pi, 28, endpoint=False) * 3 + rng.uniform(0, 6.3))
        pts = _round(canvas.frame, center[0], center[1], r, wobble=wobble)
        layer = canvas.layer()
        canvas.fill(layer, pts)
        soft = canvas.add(f.label, layer, 0.25 + 0.7 * min(v, 1.0), 0.012, in_lung=False)
        canvas.extra += soft * 0.06


def _lesion_center(rng: np.random.Generator, side: int, anat: _Anatomy, r: float) -> tuple:
    """A point inside the lung and clear of the heart (falls back to mid-lung)."""
    lung = anat.lungs[side].astype(np.float32)
    heart = anat.heart.astype(np.float32)
    for _ in range(12):
        p = (float(side * rng.uniform(0.3, 0.9)), float(rng.uniform(0.12, anat.domes[side] - 0.05)))
        inside = cv2.pointPolygonTest(lung, p, True) > r * 0.6
        if inside and cv2.pointPolygonTest(heart, p, True) < -r:
            return p
    return (side * 0.6, 0.4)


def _draw_pleural_other(f: _Finding, canvas: _Canvas, anat: _Anatomy) -> None:
    """Pleural thickening along the lateral chest wall, or an apical cap."""
    rng = f.rng
    v = min(f.vis, 1.2)
    side = _SIDES[int(rng.integers(0, 2))]
    outer = anat.outer[side]
    thick = 0.035 + 0.07 * v
    if rng.random() < 0.6:
        y0 = rng.uniform(0.25, 0.45)
        y1 = rng.uniform(0.7, anat.cps[side] - 0.03)
        sel = outer[(outer[:, 1] >= y0) & (outer[:, 1] <= y1) & (np.abs(outer[:, 0]) > 0.8)]
        if len(sel) < 2:
            sel = outer[-5:-1]
        inner = sel - np.array([side * thick, 0.0])
    else:
        sel = outer[(outer[:, 1] < 0.3) & (np.abs(outer[:, 0]) > 0.15)]
        inner = sel + np.array([0.0, thick * 1.3])
    band = np.vstack([sel, inner[::-1]])
    layer = canvas.layer()
    canvas.fill(layer, band)
    soft = canvas.add(f.label, layer, 0.3 + 0.6 * min(v, 1.0), 0.012, in_lung=False)
    canvas.extra += soft * (0.14 + 0.12 * (rng.random() < 0.3))


def _draw_pneumothorax_region(f: _Finding, canvas: _Canvas) -> None:
    """Records the air rim's box (the rim itself is drawn with the lungs)."""
    canvas.regions.append((f.label, canvas.frame.box(f.rim, pad=0.03)))


def _opacity_drawn_alone(plan: Mapping[str, _Finding]) -> bool:
    """Whether "Lung Opacity" needs its own patches.

    It does unless a parenchymal finding at least as certain is drawn, whose
    regions then also count as the opacity's.
    """
    opacity = plan.get("Lung Opacity")
    if opacity is None:
        return False
    return not any(k in plan and (opacity.uncertain or not plan[k].uncertain) for k in _PARENCHYMAL)


def _draw_opacities(plan: Mapping[str, _Finding], canvas: _Canvas, anat: _Anatomy) -> None:
    """Draws every opacity-type finding into the canvas."""
    if "Pleural Effusion" in plan:
        _draw_effusion(plan["Pleural Effusion"], canvas, anat)
    if "Edema" in plan:
        _draw_edema(plan["Edema"], canvas)
    if "Consolidation" in plan:
        _draw_consolidation(plan["Consolidation"], canvas, anat, patchy=False)
    if "Pneumonia" in plan:
        _draw_consolidation(plan["Pneumonia"], canvas, anat, patchy=True)
    if "Atelectasis" in plan:
        _draw_atelectasis(plan["Atelectasis"], canvas, anat)
    if "Lung Lesion" in plan:
        _draw_lesion(plan["Lung Lesion"], canvas, anat)
    if "Pleural Other" in plan:
        _draw_pleural_other(plan["Pleural Other"], canvas, anat)
    if "Pneumothorax" in plan:
        _draw_pneumothorax_region(plan["Pneumothorax"], canvas)
    if _opacity_drawn_alone(plan):
        _draw_lung_opacity(plan["Lung Opacity"], canvas, anat)
    np.clip(canvas.opacity, 0.0, 1.0, out=canvas.opacity)


# --------------------------------------------------------------------------
# Full-resolution sharp layers: bones, vessels, devices.
# --------------------------------------------------------------------------


def _rib_curves(patient: Patient, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Posterior (10, 14, 2) and anterior (10, 8, 2) rib centre lines of one side."""
    t = np.linspace(0.0, 1.0, 14)[None, :]
    t2 = np.linspace(0.0, 1.0, 8)[None, :]
    i = np.arange(10)[:, None]
    y0 = -0.07 + i * 0.092 * patient.rib_spacing
    drop = 0.1 + 0.07 * i / 9
    x = np.broadcast_to(0.07 + 0.98 * t, (10, 14))
    y = y0 - 0.09 * np.sin(np.pi * t * 0.8) + drop * t**2.2
    posterior = np.stack([side * x, y], axis=-1)
    xa = np.broadcast_to(1.05 - 0.62 * t2, (10, 8))
    ya = y[:, -1:] + 0.06 * np.sqrt(t2) + (0.2 + 0.02 * i) * t2
    anterior = np.stack([side * xa, ya], axis=-1)
    return posterior, anterior


@dataclass
class _Fracture:
    side: int
    rib: int
    t: float
    offset: float
    gap: float
    callus: float


def _plan_fractures(f: _Finding) -> list[_Fracture]:
    """One to three fractures of consecutive posterior ribs, laterally."""
    rng = f.rng
    v = min(f.vis, 1.2)
    side = _SIDES[int(rng.integers(0, 2))]
    first = int(rng.integers(3, 8))
    count = 1 + int(v > 0.6 and rng.random() < 0.6) + int(v > 0.85 and rng.random() < 0.5)
    t = rng.uniform(0.6, 0.9)
    callus = rng.random() < 0.85
    out = []
    for k in range(count):
        out.append(
            _Fracture(
                side,
                first + k,
                t + rng.normal(0.0, 0.03),
                offset=(0.4 + 1.0 * v) * rng.choice([-1.0, 1.0]),
                gap=0.015 + 0.03 * v,
                callus=(1.4 + 2.2 * v) if callus else 0.0,
            )
        )
    return out


def _split_rib(curve: np.ndarray, frac: _Fracture, thick: float) -> list[np.ndarray]:
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


def _draw_bones(frame: _Frame, patient: Patient, pose: _Pose, fractures: list[_Fracture]) -> tuple[np.ndarray, list]:
    """Ribs, clavicles, spine, scapulae and humeri; returns the fracture boxes."""
    bone = np.zeros((frame.height, frame.width), np.uint8)
    _draw_spine(frame, patient, bone)
    thick_u = 0.045 * patient.rib_width
    thick = max(1, int(round(frame.length(thick_u))))
    posterior, anterior, boxes = [], [], []
    for side in _SIDES:
        post, ant = _rib_curves(patient, side)
        broken = {fr.rib: fr for fr in fractures if fr.side == side}
        intact = [i for i in range(len(post)) if i not in broken]
        posterior.extend(frame.cv(post[intact]))
        for i, frac in broken.items():
            posterior.extend(frame.cv(p) for p in _split_rib(post[i], frac, thick_u))
            boxes.append(_fracture_box(frame, post[i], frac, thick_u, bone))
        anterior.extend(frame.cv(ant[:7]))
    cv2.polylines(bone, anterior, False, 40, max(1, int(thick * 0.8)), cv2.LINE_AA, _SHIFT)
    cv2.polylines(bone, posterior, False, 62, thick, cv2.LINE_AA, _SHIFT)
    if thick >= 4:
        cv2.polylines(bone, posterior, False, 48, max(1, thick // 2), cv2.LINE_AA, _SHIFT)
    _draw_shoulders(frame, pose, bone)
    return bone, boxes


def _fracture_box(frame: _Frame, curve: np.ndarray, frac: _Fracture, thick: float, bone: np.ndarray):
    """Draws a callus if any, and returns the pixel box around the fracture."""
    t = np.linspace(0.0, 1.0, len(curve))
    p = np.array([np.interp(frac.t, t, curve[:, 0]), np.interp(frac.t, t, curve[:, 1])])
    if frac.callus > 0:
        pts = _round(frame, p[0], p[1], frac.callus * thick * 0.9)
        pts[:, 1] = p[1] + (pts[:, 1] - p[1]) * 0.8
        cv2.fillPoly(bone, [frame.cv(pts)], 215, cv2.LINE_AA, _SHIFT)
    half = np.array([0.12, 0.06 + abs(frac.offset) * thick + frac.callus * thick * 0.6])
    return frame.box(np.array([p - half, p + half]))


def _draw_spine(frame: _Frame, patient: Patient, bone: np.ndarray) -> None:
    """Vertebral column with bodies, disc spaces and pedicles."""
    x0 = patient.spine_shift
    column = np.array([(x0, -2.5), (x0, 2.5)])
    cv2.polylines(bone, [frame.cv(column)], False, 30, max(1, int(round(frame.length(0.15)))), cv2.LINE_AA, _SHIFT)
    yc = np.arange(-10, 20)[:, None, None] * 0.095
    rect = np.array([(-0.07, -0.034), (0.07, -0.034), (0.07, 0.034), (-0.07, 0.034)])
    bodies = frame.cv(rect[None] + np.stack([np.full_like(yc, x0), yc], axis=-1)[:, :, 0])
    ped = _unit_circle(10) * (0.016, 0.016 / frame.aspect)
    centers = np.concatenate([np.stack([np.full_like(yc, x0 + s * 0.052), yc - 0.01], -1)[:, :, 0] for s in (-1, 1)])
    pedicles = frame.cv(ped[None] + centers)
    cv2.fillPoly(bone, list(bodies), 50, cv2.LINE_AA, _SHIFT)
    cv2.fillPoly(bone, list(pedicles), 80, cv2.LINE_AA, _SHIFT)


def _draw_shoulders(frame: _Frame, pose: _Pose, bone: np.ndarray) -> None:
    """Clavicles, humeral heads and (on AP views) scapulae over the lungs."""
    lift = pose.clavicle_lift
    clavicles = []
    for s in _SIDES:
        x = np.linspace(0.1, 1.15, 10)
        y = 0.17 - lift - 0.16 * (x - 0.1) + 0.025 * np.sin((x - 0.1) * 5.0)
        clavicles.append(frame.cv(np.stack([s * x, y], axis=1)))
    thick = max(1, int(round(frame.length(0.065))))
    cv2.polylines(bone, clavicles, False, 125, thick, cv2.LINE_AA, _SHIFT)
    heads = [frame.cv(_round(frame, s * 1.42, -0.12 - lift, 0.22, n=24)) for s in _SIDES]
    cv2.fillPoly(bone, heads, 100, cv2.LINE_AA, _SHIFT)
    if pose.scapula:
        blades = [
            frame.cv(
                np.array([(s * 1.0, -0.12), (s * 0.72, 0.25), (s * 0.78, 0.55), (s * 1.1, 0.35), (s * 1.25, -0.05)])
            )
            for s in _SIDES
        ]
        cv2.fillPoly(bone, blades, 30, cv2.LINE_AA, _SHIFT)
        cv2.polylines(bone, blades, True, 60, max(1, thick // 3), cv2.LINE_AA, _SHIFT)


@lru_cache(maxsize=1024)
def _vessel_tree(seed: int) -> tuple[np.ndarray, ...]:
    """Pulmonary vessel segments by generation, (n, 2, 2) thorax coords each.

    Cached per patient seed: vessels are part of a patient's fixed anatomy.
    """
    rng = np.random.default_rng(seed)
    starts, angles, lengths, sides = [], [], [], []
    for side, hy in ((-1, 0.47), (1, 0.43)):
        for angle in np.linspace(-70, 75, 6) + rng.normal(0, 7, 6):
            dy = -0.1 * math.sin(math.radians(angle))
            starts.append((side * (0.17 + rng.uniform(0.0, 0.05)), hy + dy))
            angles.append(angle)
            lengths.append(rng.uniform(0.1, 0.15))
            sides.append(side)
    start = np.array(starts)
    angle = np.radians(np.array(angles))
    length = np.array(lengths)
    side = np.array(sides, dtype=np.float64)
    gens = []
    for _ in range(5):
        direction = np.stack([side * np.cos(angle), -np.sin(angle) / 1.4], axis=1)
        end = start + direction * length[:, None]
        mid = (start + end) / 2 + rng.normal(0.0, 0.012, start.shape)
        gens.append(np.stack([start, mid, end], axis=1))
        n = len(start)
        spread = np.radians(rng.uniform(12, 32, n))
        start = np.repeat(end, 2, axis=0)
        angle = (
            np.repeat(angle, 2)
            + np.stack([spread, -spread * rng.uniform(0.3, 1.0, n)], 1).ravel()
            + np.radians(rng.normal(0, 8, 2 * n))
        )
        length = np.repeat(length, 2) * rng.uniform(0.7, 0.85, 2 * n)
        side = np.repeat(side, 2)
    for g in gens:
        g.setflags(write=False)
    return tuple(gens)


def _draw_vessels(frame: _Frame, patient: Patient) -> np.ndarray:
    """Low-resolution vessel layer (uint8); vessels are soft, so half size will do."""
    layer = np.zeros((frame.lo_height, frame.lo_width), np.uint8)
    values = (200, 170, 140, 110, 85)
    widths = (0.035, 0.025, 0.018, 0.013, 0.009)
    for gen, value, width in zip(_vessel_tree(patient.vessel_seed), values, widths):
        thick = max(1, int(round(frame.length(width, True))))
        cv2.polylines(layer, list(frame.cv(gen, True)), False, value, thick, cv2.LINE_AA, _SHIFT)
    return layer


def _tube(frame: _Frame, layer: np.ndarray, pts: np.ndarray, width: float, value: int, stripe: bool) -> None:
    """A tube (faint wall, optional radiopaque stripe) along a smoothed path."""
    path = _smooth_path(pts)
    cv_pts = frame.cv(path)
    thick = max(1, int(round(frame.length(width))))
    if stripe:
        cv2.polylines(layer, [cv_pts], False, int(value * 0.45), thick, cv2.LINE_AA, _SHIFT)
        thin = max(1, int(round(frame.length(width * 0.3))))
        cv2.polylines(layer, [cv_pts], False, value, thin, cv2.LINE_AA, _SHIFT)
    else:
        cv2.polylines(layer, [cv_pts], False, value, thick, cv2.LINE_AA, _SHIFT)


def _smooth_path(pts: np.ndarray) -> np.ndarray:
    """Two rounds of Chaikin corner cutting: a smooth curve through a control polygon."""
    pts = np.asarray(pts, dtype=np.float64)
    for _ in range(2):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        pts = np.vstack([pts[:1], mid, pts[-1:]])
    return pts


def _device_paths(rng: np.random.Generator, kind: str, anat: _Anatomy) -> list[np.ndarray]:
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
        s = _SIDES[int(rng.integers(0, 2))]
        return [np.array([(s * 1.5, 1.05), (s * 1.05, 0.85), (s * 0.8, 0.5), (s * 0.6, 0.15)])]
    s = 1 if rng.random() < 0.8 else -1
    gx, gy = s * rng.uniform(0.5, 0.75), rng.uniform(-0.05, 0.08)
    return [
        np.array([(gx, gy), (s * 0.25, -0.05), (-0.1, 0.25), (-0.02, 0.6), (0.18, 0.78)]),
        np.array([(gx, gy), (s * 0.25, -0.02), (-0.1, 0.25), (-0.12, 0.55)]),
    ]


_DEVICE_KINDS = ("ett", "ng", "cvc", "pacer", "tube")


def _draw_devices(f: _Finding, frame: _Frame, anat: _Anatomy, layer: np.ndarray) -> list:
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
                _tube(frame, layer, path, 0.07, value, stripe=True)
            else:
                _tube(frame, layer, path, 0.018, value, stripe=False)
        pts = np.vstack(paths)
        if kind == "pacer":
            box = _round(frame, pts[0, 0], pts[0, 1], 0.11, n=12)
            box = np.clip(box - pts[0], -0.09, 0.09) + pts[0]
            cv2.fillPoly(layer, [frame.cv(box)], value, cv2.LINE_AA, _SHIFT)
            pts = np.vstack([pts, box])
        boxes.append(frame.box(pts, pad=0.04))
    return boxes


def _draw_distractors(rng: np.random.Generator, frame: _Frame, pose: _Pose, layer: np.ndarray) -> None:
    """ECG electrodes with wires, clips and a side marker: bright, but not findings."""
    for _ in range(pose.electrodes):
        x, y = rng.uniform(-1.1, 1.1), rng.uniform(-0.2, 1.2)
        value = int(rng.integers(150, 240))
        ring = frame.cv(_round(frame, x, y, 0.045, n=16))
        cv2.polylines(layer, [ring], True, value, max(1, int(frame.length(0.012))), cv2.LINE_AA, _SHIFT)
        cv2.fillPoly(layer, [frame.cv(_round(frame, x, y, 0.015, n=8))], 230, cv2.LINE_AA, _SHIFT)
        if rng.random() < 0.5:
            wire = np.array(
                [
                    (x, y),
                    (x + rng.normal(0, 0.4), y + rng.normal(-0.3, 0.4)),
                    (x + rng.normal(0, 0.6), y + rng.normal(-0.8, 0.5)),
                    (x + rng.normal(0, 0.8), -2.5),
                ]
            )
            _tube(frame, layer, wire, rng.uniform(0.008, 0.016), int(rng.integers(110, 220)), stripe=False)
    if rng.random() < 0.15:
        x, y = rng.uniform(-1.2, 1.2), rng.uniform(-0.3, 1.4)
        clip = _ellipse(x, y, rng.uniform(0.03, 0.07), 0.02, rng.uniform(0, 180), n=8)
        cv2.fillPoly(layer, [frame.cv(clip)], int(rng.integers(180, 255)), cv2.LINE_AA, _SHIFT)
    if pose.marker >= 0:
        h, w = frame.height, frame.width
        scale = min(h, w) / 320.0
        corner = pose.marker
        x = int(w * (0.06 if corner % 2 == 0 else 0.86))
        y = int(h * (0.1 if corner < 2 else 0.95))
        cv2.putText(
            layer,
            "LR"[corner % 2],
            (x, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.8 * scale,
            230,
            max(1, int(round(2 * scale))),
            cv2.LINE_AA,
        )


# --------------------------------------------------------------------------
# Composition and exposure.
# --------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _ramps(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical [-1, 1] ramps (read-only, cached per size)."""
    xr = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    yr = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xr.setflags(write=False)
    yr.setflags(write=False)
    return xr, yr


def _collimate(density: np.ndarray, widths: tuple[float, float, float, float]) -> None:
    """Bright collimator bands along the left, top, right and bottom edges."""
    h, w = density.shape
    left, top, right, bottom = (int(round(f * n)) for f, n in zip(widths, (w, h, w, h)))
    for band in (density[:, :left], density[:top], density[:, w - right :], density[h - bottom :]):
        if band.size and band.shape[0] and band.shape[1]:
            band[...] = np.maximum(band, 1.3)


def _up(frame: _Frame, img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (frame.width, frame.height), interpolation=cv2.INTER_LINEAR)


def _expose(density: np.ndarray, pose: _Pose, rng: np.random.Generator) -> np.ndarray:
    """Noise, windowing and gamma: density (float32, modified) to uint8."""
    h, w = density.shape
    xr, yr = _ramps(h, w)
    density += pose.heel[0] * xr
    density += pose.heel[1] * yr
    _collimate(density, pose.collimation)
    grain = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    k = pose.noise / 73.9
    cv2.scaleAdd(grain.astype(np.float32), k, density, dst=density)
    scale = 255.0 / pose.window_width
    density -= pose.window_low + 127.5 * k
    density *= scale
    np.maximum(density, 0.0, out=density)
    img = cv2.convertScaleAbs(density)
    lut = (255.0 * (np.arange(256) / 255.0) ** pose.gamma + 0.5).astype(np.uint8)
    return cv2.LUT(img, lut)


def _render_frontal(
    patient: Patient, plan: dict[str, _Finding], pose: _Pose, seeds: Mapping[str, int], height: int, width: int
) -> tuple[np.ndarray, list[Region]]:
    """Draws a PA or AP radiograph and the regions of its findings."""
    anat = _build_anatomy(patient, pose, plan)
    frame = _make_frame(patient, pose, height, width)
    soft = _soft_tissue(frame, patient, anat)
    air, par = _air_layers(frame, anat, pose, plan)
    canvas = _Canvas(frame, air > 0.05)
    _hila(frame, canvas.extra)
    _draw_opacities(plan, canvas, anat)
    noise_rng = np.random.default_rng(seeds["noise"])
    air_w = pose.air_weight * patient.lung_air
    clear = 1.0 - canvas.opacity
    texture = _smooth_noise(noise_rng, clear.shape, max(8, frame.lo_width // 5), 0.9, 1.1)
    low = soft * (pose.soft_weight * patient.soft_tissue) - air * clear * texture * air_w + canvas.extra
    low += _smooth_noise(noise_rng, low.shape, 6, -pose.mottle, pose.mottle)
    low = _blur(low, 0.9)
    low += _vessel_layer(frame, patient, pose, canvas, par * clear)
    density = _up(frame, low)

    fractures = _plan_fractures(plan["Fracture"]) if "Fracture" in plan else []
    bone, frac_boxes = _draw_bones(frame, patient, pose, fractures)
    cv2.scaleAdd(bone.astype(np.float32), 0.0011 * patient.bone_density, density, dst=density)
    sharp = np.zeros((height, width), np.uint8)
    regions = list(canvas.regions)
    regions += [("Fracture", b) for b in frac_boxes]
    if "Pneumothorax" in plan:
        _pleural_line(frame, plan["Pneumothorax"], anat, sharp)
    if "Support Devices" in plan:
        boxes = _draw_devices(plan["Support Devices"], frame, anat, sharp)
        regions += [("Support Devices", b) for b in boxes]
    if "Cardiomegaly" in plan:
        regions.append(("Cardiomegaly", _visible_box(frame, anat.heart, anat)))
    if "Enlarged Cardiomediastinum" in plan:
        regions.append(("Enlarged Cardiomediastinum", _upper_mediastinum_box(frame, anat)))
    _draw_distractors(np.random.default_rng(seeds["extras"]), frame, pose, sharp)
    cv2.scaleAdd(sharp.astype(np.float32), _SHARP_DENSITY, density, dst=density)
    density = _blur(density, pose.blur * min(height, width) / 320.0)
    img = _expose(density, pose, noise_rng)
    return img, _finish_regions(regions, plan, height, width)


def _vessel_layer(frame: _Frame, patient: Patient, pose: _Pose, canvas: _Canvas, visible: np.ndarray) -> np.ndarray:
    """Low-resolution vessel density, masked to aerated lung, blurred where edematous."""
    layer = _draw_vessels(frame, patient).astype(np.float32)
    layer *= 0.15 * pose.vessels / 255.0
    if canvas.haze is not None:
        blurred = _blur(layer, frame.length(0.04, True))
        layer += canvas.haze * (blurred * 1.4 - layer)
    layer *= visible
    return layer


def _pleural_line(frame: _Frame, ptx: _Finding, anat: _Anatomy, sharp: np.ndarray) -> None:
    """The thin visceral pleural line of a pneumothorax."""
    line = anat.pleural_line[ptx.side]
    if len(line) < 2:
        return
    thick = max(1, int(round(frame.length(0.012))))
    value = int(25 + 35 * min(ptx.vis, 1.0))
    cv2.polylines(sharp, [frame.cv(line)], False, value, thick, cv2.LINE_AA, _SHIFT)


def _visible_box(frame: _Frame, poly: np.ndarray, anat: _Anatomy):
    """Box of the part of a polygon above the lower dome (the visible heart)."""
    bottom = max(anat.domes.values()) + 0.08
    pts = poly[poly[:, 1] <= bottom]
    xs = poly[:, 0]
    pts = np.vstack([pts, [(xs.min(), bottom), (xs.max(), bottom)]])
    return frame.box(pts, pad=0.02)


def _upper_mediastinum_box(frame: _Frame, anat: _Anatomy):
    """Box of the upper mediastinum, from the lung apices to the heart."""
    pts = anat.mediastinum
    pts = pts[(pts[:, 1] >= -0.05) & (pts[:, 1] <= 0.5)]
    x0, x1 = pts[:, 0].min(), pts[:, 0].max()
    return frame.box(np.array([(x0, -0.05), (x1, 0.5)]), pad=0.02)


def _finish_regions(regions: list, plan: Mapping[str, _Finding], height: int, width: int) -> list[Region]:
    """Normalises, clips and labels regions; parenchymal ones also count as opacity."""
    out: list[Region] = []
    for label, box in regions:
        norm = _normalise_box(box, height, width)
        if norm is not None:
            out.append(Region(label, norm))
    if "Lung Opacity" in plan and not _opacity_drawn_alone(plan):
        out += [Region("Lung Opacity", r.box) for r in out if r.label in _PARENCHYMAL]
    return out


def _normalise_box(box, height: int, width: int):
    """Pixel box to a clipped [0, 1] box with a minimum size of one pixel."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = max(0.0, x0) / width, min(float(width), x1) / width
    y0, y1 = max(0.0, y0) / height, min(float(height), y1) / height
    if x1 <= x0 or y1 <= y0:
        return None
    return (round(x0, 5), round(y0, 5), round(x1, 5), round(y1, 5))


# --------------------------------------------------------------------------
# Lateral view.
# --------------------------------------------------------------------------


def _lateral_lung(dome: float, cp_post: float) -> np.ndarray:
    """Lung outline on a lateral view: anterior to the left, posterior right."""
    t = np.linspace(np.pi, 0.0, 14)
    arc = np.stack([0.02 + 0.88 * np.cos(t), 0.45 - 0.5 * np.sin(t)], axis=1)
    x = np.linspace(0.93, -0.84, 16)
    peak = -0.05
    y = dome + np.where(
        x > peak, (cp_post - dome) * ((x - peak) / (0.93 - peak)) ** 2, 0.14 * ((peak - x) / (0.84 + peak)) ** 2
    )
    return np.vstack([arc, [(0.93, cp_post - 0.1)], np.stack([x, y], 1)])


def _lateral_soft(frame: _Frame) -> np.ndarray:
    """Soft tissue of a lateral view: trunk, neck and raised arms."""
    shape = (frame.lo_height, frame.lo_width)
    soft = np.zeros(shape, np.float32)
    body = np.array(
        [
            (-0.45, -2.5),
            (-0.6, -0.45),
            (-1.05, -0.1),
            (-1.12, 0.5),
            (-1.15, 1.1),
            (-1.3, 3.0),
            (1.4, 3.0),
            (1.3, 1.0),
            (1.25, 0.2),
            (1.05, -0.5),
            (0.65, -2.5),
        ]
    )
    cv2.fillPoly(soft, [frame.cv(body, True)], 1.0, cv2.LINE_8, _SHIFT)
    soft = _blur(soft, frame.length(0.1, True))
    arms = np.zeros(shape, np.float32)
    cv2.fillPoly(arms, [frame.cv(_ellipse(-0.35, -0.4, 0.75, 0.28, -25), True)], 0.25, cv2.LINE_8, _SHIFT)
    soft += _blur(arms, frame.length(0.12, True))
    return soft


def _lateral_air(frame: _Frame, domes: tuple[float, float], heart: np.ndarray) -> np.ndarray:
    """Aerated lungs (two overlapping domes), heart, trachea on a lateral view."""
    shape = (frame.lo_height, frame.lo_width)
    air = np.zeros(shape, np.float32)
    for dome in domes:
        one = np.zeros(shape, np.float32)
        cv2.fillPoly(one, [frame.cv(_lateral_lung(dome, dome + 0.22), True)], 0.5, cv2.LINE_8, _SHIFT)
        air += one
    depth = _blur((air > 0).astype(np.float32), frame.length(0.2, True))
    air *= 0.35 + 0.65 * np.minimum(depth * 1.5, 1.0)
    factor = np.ones(shape, np.float32)
    cv2.fillPoly(factor, [frame.cv(heart, True)], 0.3, cv2.LINE_8, _SHIFT)
    air *= factor
    tube = np.zeros(shape, np.float32)
    trachea = np.array([(-0.3, -2.5), (-0.18, -0.3), (0.0, 0.38)])
    cv2.polylines(
        tube, [frame.cv(trachea, True)], False, 0.55, max(1, int(round(frame.length(0.1, True)))), cv2.LINE_8, _SHIFT
    )
    np.maximum(air, tube, out=air)
    return air


def _render_lateral(
    patient: Patient, plan: dict[str, _Finding], pose: _Pose, seeds: Mapping[str, int], height: int, width: int
) -> tuple[np.ndarray, list[Region]]:
    """Draws a lateral radiograph (patient facing left)."""
    frame = _make_frame(patient, pose, height, width, depth_ratio=0.75)
    soft = _lateral_soft(frame)
    dome_r = patient.dome_right + pose.dome_shift - 0.1
    dome_l = dome_r + patient.dome_left_drop
    cardio = plan.get("Cardiomegaly")
    grow = 1.0 if cardio is None else 1.05 + (0.05 if cardio.uncertain else 0.3) * cardio.vis
    heart = _ellipse(-0.38, dome_l - 0.14, 0.42 * grow, 0.27 * grow, -28)
    air = _lateral_air(frame, (dome_r, dome_l), heart)
    canvas = _Canvas(frame, air > 0.05)
    regions: list = []
    if cardio is not None:
        regions.append(("Cardiomegaly", frame.box(heart, pad=0.02)))
    _lateral_findings(plan, canvas, dome_r, dome_l)
    noise_rng = np.random.default_rng(seeds["noise"])
    clear = 1.0 - canvas.opacity
    texture = _smooth_noise(noise_rng, clear.shape, max(8, frame.lo_width // 5), 0.9, 1.1)
    low = (
        soft * (pose.soft_weight * patient.soft_tissue * 1.1)
        - air * clear * texture * pose.air_weight * patient.lung_air
        + canvas.extra
    )
    low += _smooth_noise(noise_rng, low.shape, 6, -pose.mottle, pose.mottle)
    density = _up(frame, _blur(low, 0.9))
    bone = _lateral_bones(frame, patient)
    cv2.scaleAdd(bone.astype(np.float32), 0.0011 * patient.bone_density, density, dst=density)
    sharp = np.zeros((height, width), np.uint8)
    if "Support Devices" in plan:
        regions += [("Support Devices", b) for b in _lateral_devices(plan["Support Devices"], frame, sharp, dome_l)]
    _draw_distractors(np.random.default_rng(seeds["extras"]), frame, pose, sharp)
    cv2.scaleAdd(sharp.astype(np.float32), _SHARP_DENSITY, density, dst=density)
    density = _blur(density, pose.blur * min(height, width) / 320.0)
    img = _expose(density, pose, noise_rng)
    return img, _finish_regions(regions + canvas.regions, plan, height, width)


def _lateral_findings(plan: Mapping[str, _Finding], canvas: _Canvas, dome_r: float, dome_l: float) -> None:
    """Opacity findings on a lateral view (pneumothorax, pleural other, fracture skipped)."""
    if "Pleural Effusion" in plan:
        f = plan["Pleural Effusion"]
        v = min(f.vis, 1.2)
        cp = dome_l + 0.25
        x = np.linspace(-0.3, 0.95, 12)
        y = cp - (0.05 + 0.4 * v) * np.clip((x + 0.3) / 1.25, 0, 1) ** 1.5 + 0.02
        layer = canvas.layer()
        canvas.fill(layer, np.vstack([np.stack([x, y], 1), [(0.95, cp + 0.4), (-0.3, cp + 0.4)]]))
        canvas.add(f.label, layer, min(1.0, 0.35 + 0.65 * v), 0.025)
    if "Enlarged Cardiomediastinum" in plan:
        f = plan["Enlarged Cardiomediastinum"]
        layer = canvas.layer()
        canvas.fill(layer, _ellipse(-0.55, 0.25, 0.18 + 0.12 * f.vis, 0.22, 10))
        canvas.add(f.label, layer, 0.2 + 0.6 * min(f.vis, 1.0), 0.04)
    blobs = {
        "Consolidation": (0.15, 0.25, 0.02),
        "Pneumonia": (0.1, 0.2, 0.05),
        "Atelectasis": (0.08, 0.14, 0.02),
        "Lung Lesion": (0.04, 0.12, 0.01),
        "Edema": (0.3, 0.4, 0.09),
    }
    if _opacity_drawn_alone(plan):
        blobs = {"Lung Opacity": (0.1, 0.2, 0.05)}
    for label, (r0, r1, sigma) in blobs.items():
        if label not in plan:
            continue
        f = plan[label]
        rng = f.rng
        v = min(f.vis, 1.0)
        cx, cy = (0.0, 0.45) if label == "Edema" else (rng.uniform(-0.5, 0.6), rng.uniform(0.15, dome_r - 0.1))
        layer = canvas.layer()
        r = r0 + (r1 - r0) * v
        canvas.fill(layer, _round(canvas.frame, cx, cy, r))
        canvas.add(label, layer, 0.15 + 0.7 * v, sigma)
    np.clip(canvas.opacity, 0.0, 1.0, out=canvas.opacity)


def _lateral_bones(frame: _Frame, patient: Patient) -> np.ndarray:
    """Kyphotic thoracic spine, posterior ribs, scapula and sternum."""
    bone = np.zeros((frame.height, frame.width), np.uint8)
    bodies, elements = [], []
    for k in range(-10, 22):
        yc = k * 0.085
        xc = 0.62 + 0.1 * math.sin(min(max(yc, -0.6), 1.4) * 1.6)
        h = 0.03
        bodies.append(
            frame.cv(
                np.array(
                    [(xc - 0.14, yc - h), (xc + 0.14, yc - h * 0.9), (xc + 0.14, yc + h * 0.9), (xc - 0.14, yc + h)]
                )
            )
        )
        elements.append(frame.cv(_round(frame, xc + 0.24, yc - 0.01, 0.05, n=10)))
    cv2.fillPoly(bone, bodies, 75, cv2.LINE_AA, _SHIFT)
    cv2.fillPoly(bone, elements, 45, cv2.LINE_AA, _SHIFT)
    ribs = [
        frame.cv(np.array([(1.05, y), (0.5, y + 0.12), (-0.2, y + 0.3), (-0.8, y + 0.45)]))
        for y in np.arange(-0.1, 0.75, 0.09 * patient.rib_spacing)
    ]
    cv2.polylines(bone, ribs, False, 32, max(1, int(round(frame.length(0.035)))), cv2.LINE_AA, _SHIFT)
    sternum = np.array([(-0.93, 0.0), (-0.97, 0.35), (-0.93, 0.75)])
    cv2.polylines(bone, [frame.cv(sternum)], False, 80, max(1, int(round(frame.length(0.06)))), cv2.LINE_AA, _SHIFT)
    scapula = np.array([(0.9, -0.2), (0.7, 0.15), (0.78, 0.5), (1.0, 0.3), (1.05, -0.1)])
    cv2.fillPoly(bone, [frame.cv(scapula)], 30, cv2.LINE_AA, _SHIFT)
    return bone


def _lateral_devices(f: _Finding, frame: _Frame, sharp: np.ndarray, dome_l: float) -> list:
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
        _tube(frame, sharp, path, 0.03, value, stripe=False)
        if int(k) == 2:
            gen = _round(frame, path[0, 0], path[0, 1], 0.1, n=12)
            cv2.fillPoly(sharp, [frame.cv(gen)], value, cv2.LINE_AA, _SHIFT)
            path = np.vstack([path, gen])
        boxes.append(frame.box(path, pad=0.04))
    return boxes


# --------------------------------------------------------------------------
# Public entry point.
# --------------------------------------------------------------------------


def render(
    patient: Patient,
    findings: Mapping[str, float],
    view: str,
    rng: np.random.Generator,
    height: int,
    width: int,
    contrast: float = 1.0,
) -> tuple[np.ndarray, list[Region]]:
    """Renders one radiograph of ``patient`` showing ``findings``.

    Args:
        patient: The patient's anatomy (``sample_patient``).
        findings: Class name to 1.0 (positive: drawn clearly, severity varies)
            or -1.0 (uncertain: drawn faint or ambiguous). Missing classes,
            0.0, NaN and "No Finding" draw nothing.
        view: "PA", "AP" or "lateral".
        rng: Source of all randomness; the image is a function of its state.
        height: Output height in pixels (at least 16).
        width: Output width in pixels (at least 16).
        contrast: Multiplier of every finding's visibility (0.5: harder).

    Returns:
        The uint8 image of shape (height, width) and the regions of the drawn
        findings: at least one per drawn finding on frontal views (lateral
        views skip pneumothorax, pleural other and fracture). Boxes are taken
        after all geometric transforms and clipped to [0, 1]. When "Lung
        Opacity" is present together with a parenchymal finding (edema,
        consolidation, pneumonia, atelectasis, lesion), no separate opacity
        is drawn and those findings' regions are repeated as "Lung Opacity".

    Raises:
        ValueError: On an unknown view, finding name, size or contrast.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if int(height) < 16 or int(width) < 16:
        raise ValueError(f"image size must be at least 16x16, got {height}x{width}")
    if not contrast >= 0.0:
        raise ValueError(f"contrast must be >= 0, got {contrast!r}")
    seeds = _stream_seeds(rng)
    plan = _plan_findings(findings, float(contrast), seeds)
    pose = _sample_pose(np.random.default_rng(seeds["pose"]), view)
    if view == "lateral":
        return _render_lateral(patient, plan, pose, seeds, int(height), int(width))
    return _render_frontal(patient, plan, pose, seeds, int(height), int(width))
