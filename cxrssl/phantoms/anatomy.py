"""The patient's anatomy in an image: lungs, heart, mediastinum, soft tissue, air, bones, vessels, the
objects that are not findings, and the exposure that turns densities into grey levels.

Images are composed as a sum of densities (bright = dense): soft tissue minus
aerated lung, plus bone, vessels and high-density objects. Smooth layers are
drawn at half resolution and upsampled; sharp ones (ribs, vessels, tubes) at
full resolution. Findings that move structures (a raised dome, a larger
heart, a collapsed lung) act through :func:`build_anatomy`'s hooks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from cxrssl.phantoms.draw import SHIFT, SIDES, Frame, blur, ellipse, round_outline, tube, unit_circle
from cxrssl.phantoms.patient import Patient, Pose


@dataclass
class Anatomy:
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
    rim_vis: float = 0.0  # a pneumothorax's visibility, for its air rim


@dataclass
class AnatomyDraft:
    """What findings may change before the frontal outlines are drawn: the domes, the heart's width
    (cardiothoracic ratio) and how far the mediastinum is widened."""

    domes: dict[int, float]
    ctr: float
    mediastinum_extra: float = 0.0


def build_anatomy(patient: Patient, pose: Pose, plan: Mapping) -> Anatomy:
    """Frontal geometry, with the findings that change it applied (their ``shape_anatomy`` and
    ``after_anatomy`` hooks, in the table's order)."""
    from cxrssl.phantoms.findings import FINDINGS

    domes = {-1: patient.dome_right + pose.dome_shift, 1: patient.dome_right + patient.dome_left_drop + pose.dome_shift}
    cps = {-1: 1.0, 1: 1.0 + patient.dome_left_drop * 0.5}
    base_domes = dict(domes)
    draft = AnatomyDraft(domes, min(patient.ctr * pose.heart_mag, 0.49))
    present = [(FINDINGS[label], plan[label]) for label in FINDINGS if label in plan]
    for spec, finding in present:
        if spec.shape_anatomy is not None:
            spec.shape_anatomy(finding, draft)
    ctr = draft.ctr
    height = patient.heart_height * (1.0 + 0.6 * max(0.0, ctr - 0.45))
    heart_y = base_domes[1] - 0.13
    heart = heart_polygon(2.0 * ctr, patient.heart_right_frac, height, patient.heart_tilt, heart_y)
    mediastinum = mediastinum_polygon(patient.mediastinum_half_width, patient.aortic_knob, draft.mediastinum_extra)
    anat = Anatomy(domes, base_domes, cps, heart, 2.0 * ctr, mediastinum)
    for side in SIDES:
        anat.outer[side], anat.lungs[side] = lung_parts(side, domes[side], cps[side])
    for spec, finding in present:
        if spec.after_anatomy is not None:
            spec.after_anatomy(finding, anat)
    return anat


def lung_parts(side: int, dome: float, cp: float) -> tuple[np.ndarray, np.ndarray]:
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


def heart_polygon(width: float, right_frac: float, height: float, tilt: float, center_y: float) -> np.ndarray:
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


def mediastinum_polygon(half: float, knob: float, extra: float) -> np.ndarray:
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


def body_polygon(scale: float) -> np.ndarray:
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


def soft_tissue(frame: Frame, patient: Patient, anat: Anatomy) -> np.ndarray:
    """Low-resolution soft-tissue thickness map (about 0..1.2)."""
    soft = np.zeros((frame.lo_height, frame.lo_width), np.float32)
    cv2.fillPoly(soft, [frame.cv(body_polygon(1.0), True)], 0.7, cv2.LINE_8, SHIFT)
    cv2.fillPoly(soft, [frame.cv(body_polygon(0.88), True)], 1.0, cv2.LINE_8, SHIFT)
    soft = blur(soft, frame.length(0.07, True))
    extra = np.zeros_like(soft)
    if patient.breast > 0:
        for side in SIDES:
            pts = ellipse(side * 0.62, 0.98, 0.5, 0.3, side * -10.0)
            cv2.fillPoly(extra, [frame.cv(pts, True)], 0.18 * patient.breast, cv2.LINE_8, SHIFT)
    domes = anat.base_domes
    liver = np.array([(-1.3, domes[-1] + 0.05), (-0.4, domes[-1]), (0.3, domes[1] + 0.15), (0.3, 2.5), (-1.3, 2.5)])
    cv2.fillPoly(extra, [frame.cv(liver, True)], 0.08, cv2.LINE_8, SHIFT)
    soft += blur(extra, frame.length(0.1, True))
    return soft


def air_layers(frame: Frame, anat: Anatomy, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Aerated lung (darkening) and visible parenchyma (where vessels show)."""
    shape = (frame.lo_height, frame.lo_width)
    air = np.zeros(shape, np.float32)
    par = np.zeros(shape, np.float32)
    for side in SIDES:
        pts = frame.cv(anat.lungs[side], True)
        if side in anat.collapsed:
            rim_air = 1.1 + 0.2 * min(anat.rim_vis, 1.0)
            cv2.fillPoly(air, [pts], rim_air, cv2.LINE_8, SHIFT)
            inner = frame.cv(anat.collapsed[side], True)
            cv2.fillPoly(air, [inner], 1.0 - 0.1 * min(anat.rim_vis, 1.0), cv2.LINE_8, SHIFT)
            cv2.fillPoly(par, [inner], 1.0, cv2.LINE_8, SHIFT)
        else:
            cv2.fillPoly(air, [pts], 1.0, cv2.LINE_8, SHIFT)
            cv2.fillPoly(par, [pts], 1.0, cv2.LINE_8, SHIFT)
    depth = blur((air > 0).astype(np.float32), frame.length(0.16, True))
    air *= 0.35 + 0.65 * np.minimum(depth * 1.5, 1.0)
    factor = np.ones(shape, np.float32)
    cv2.fillPoly(factor, [frame.cv(anat.heart, True)], 0.12, cv2.LINE_8, SHIFT)
    cv2.fillPoly(factor, [frame.cv(anat.mediastinum, True)], 0.0, cv2.LINE_8, SHIFT)
    air *= factor
    par *= factor
    airways(frame, air, anat, pose)
    return air, par


def airways(frame: Frame, air: np.ndarray, anat: Anatomy, pose: Pose) -> None:
    """Trachea, main bronchi and the gastric bubble, painted into ``air``."""
    trachea = np.array([(-0.01, -2.0), (-0.01, -0.3), (0.0, 0.32)])
    width = max(1, int(round(frame.length(0.075, True))))
    cv2.polylines(air, [frame.cv(trachea, True)], False, 0.38, width, cv2.LINE_8, SHIFT)
    bronchi = [np.array([(0.0, 0.32), (-0.14, 0.42)]), np.array([(0.0, 0.32), (0.14, 0.39)])]
    width = max(1, int(round(frame.length(0.05, True))))
    cv2.polylines(air, [frame.cv(b, True) for b in bronchi], False, 0.3, width, cv2.LINE_8, SHIFT)
    if pose.stomach_gas > 0:
        gas = ellipse(0.42, anat.base_domes[1] + 0.1, 0.16, 0.055)
        cv2.fillPoly(air, [frame.cv(gas, True)], pose.stomach_gas, cv2.LINE_8, SHIFT)


def hila(frame: Frame, extra: np.ndarray) -> None:
    """Hilar vascular density."""
    for side, y in ((-1, 0.46), (1, 0.42)):
        pts = ellipse(side * 0.2, y, 0.07, 0.06)
        cv2.fillPoly(extra, [frame.cv(pts, True)], 0.07, cv2.LINE_8, SHIFT)


def rib_curves(patient: Patient, side: int) -> tuple[np.ndarray, np.ndarray]:
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


def draw_bones(frame: Frame, patient: Patient, pose: Pose, fractures: list) -> tuple[np.ndarray, list]:
    """Ribs, clavicles, spine, scapulae and humeri, with the ribs ``fractures`` breaks; returns the fracture boxes."""
    from cxrssl.phantoms.findings.fracture import fracture_box, split_rib

    bone = np.zeros((frame.height, frame.width), np.uint8)
    draw_spine(frame, patient, bone)
    thick_u = 0.045 * patient.rib_width
    thick = max(1, int(round(frame.length(thick_u))))
    posterior, anterior, boxes = [], [], []
    for side in SIDES:
        post, ant = rib_curves(patient, side)
        broken = {fr.rib: fr for fr in fractures if fr.side == side}
        intact = [i for i in range(len(post)) if i not in broken]
        posterior.extend(frame.cv(post[intact]))
        for i, frac in broken.items():
            posterior.extend(frame.cv(p) for p in split_rib(post[i], frac, thick_u))
            boxes.append(fracture_box(frame, post[i], frac, thick_u, bone))
        anterior.extend(frame.cv(ant[:7]))
    cv2.polylines(bone, anterior, False, 40, max(1, int(thick * 0.8)), cv2.LINE_AA, SHIFT)
    cv2.polylines(bone, posterior, False, 62, thick, cv2.LINE_AA, SHIFT)
    if thick >= 4:
        cv2.polylines(bone, posterior, False, 48, max(1, thick // 2), cv2.LINE_AA, SHIFT)
    draw_shoulders(frame, pose, bone)
    return bone, boxes


def draw_spine(frame: Frame, patient: Patient, bone: np.ndarray) -> None:
    """Vertebral column with bodies, disc spaces and pedicles."""
    x0 = patient.spine_shift
    column = np.array([(x0, -2.5), (x0, 2.5)])
    cv2.polylines(bone, [frame.cv(column)], False, 30, max(1, int(round(frame.length(0.15)))), cv2.LINE_AA, SHIFT)
    yc = np.arange(-10, 20)[:, None, None] * 0.095
    rect = np.array([(-0.07, -0.034), (0.07, -0.034), (0.07, 0.034), (-0.07, 0.034)])
    bodies = frame.cv(rect[None] + np.stack([np.full_like(yc, x0), yc], axis=-1)[:, :, 0])
    ped = unit_circle(10) * (0.016, 0.016 / frame.aspect)
    centers = np.concatenate([np.stack([np.full_like(yc, x0 + s * 0.052), yc - 0.01], -1)[:, :, 0] for s in (-1, 1)])
    pedicles = frame.cv(ped[None] + centers)
    cv2.fillPoly(bone, list(bodies), 50, cv2.LINE_AA, SHIFT)
    cv2.fillPoly(bone, list(pedicles), 80, cv2.LINE_AA, SHIFT)


def draw_shoulders(frame: Frame, pose: Pose, bone: np.ndarray) -> None:
    """Clavicles, humeral heads and (on AP views) scapulae over the lungs."""
    lift = pose.clavicle_lift
    clavicles = []
    for s in SIDES:
        x = np.linspace(0.1, 1.15, 10)
        y = 0.17 - lift - 0.16 * (x - 0.1) + 0.025 * np.sin((x - 0.1) * 5.0)
        clavicles.append(frame.cv(np.stack([s * x, y], axis=1)))
    thick = max(1, int(round(frame.length(0.065))))
    cv2.polylines(bone, clavicles, False, 125, thick, cv2.LINE_AA, SHIFT)
    heads = [frame.cv(round_outline(frame, s * 1.42, -0.12 - lift, 0.22, n=24)) for s in SIDES]
    cv2.fillPoly(bone, heads, 100, cv2.LINE_AA, SHIFT)
    if pose.scapula:
        blades = [
            frame.cv(
                np.array([(s * 1.0, -0.12), (s * 0.72, 0.25), (s * 0.78, 0.55), (s * 1.1, 0.35), (s * 1.25, -0.05)])
            )
            for s in SIDES
        ]
        cv2.fillPoly(bone, blades, 30, cv2.LINE_AA, SHIFT)
        cv2.polylines(bone, blades, True, 60, max(1, thick // 3), cv2.LINE_AA, SHIFT)


@lru_cache(maxsize=1024)
def vessel_tree(seed: int) -> tuple[np.ndarray, ...]:
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


def draw_vessels(frame: Frame, patient: Patient) -> np.ndarray:
    """Low-resolution vessel layer (uint8); vessels are soft, so half size will do."""
    layer = np.zeros((frame.lo_height, frame.lo_width), np.uint8)
    values = (200, 170, 140, 110, 85)
    widths = (0.035, 0.025, 0.018, 0.013, 0.009)
    for gen, value, width in zip(vessel_tree(patient.vessel_seed), values, widths):
        thick = max(1, int(round(frame.length(width, True))))
        cv2.polylines(layer, list(frame.cv(gen, True)), False, value, thick, cv2.LINE_AA, SHIFT)
    return layer


def draw_distractors(rng: np.random.Generator, frame: Frame, pose: Pose, layer: np.ndarray) -> None:
    """ECG electrodes with wires, clips and a side marker: bright, but not findings."""
    for _ in range(pose.electrodes):
        x, y = rng.uniform(-1.1, 1.1), rng.uniform(-0.2, 1.2)
        value = int(rng.integers(150, 240))
        ring = frame.cv(round_outline(frame, x, y, 0.045, n=16))
        cv2.polylines(layer, [ring], True, value, max(1, int(frame.length(0.012))), cv2.LINE_AA, SHIFT)
        cv2.fillPoly(layer, [frame.cv(round_outline(frame, x, y, 0.015, n=8))], 230, cv2.LINE_AA, SHIFT)
        if rng.random() < 0.5:
            wire = np.array(
                [
                    (x, y),
                    (x + rng.normal(0, 0.4), y + rng.normal(-0.3, 0.4)),
                    (x + rng.normal(0, 0.6), y + rng.normal(-0.8, 0.5)),
                    (x + rng.normal(0, 0.8), -2.5),
                ]
            )
            tube(frame, layer, wire, rng.uniform(0.008, 0.016), int(rng.integers(110, 220)), stripe=False)
    if rng.random() < 0.15:
        x, y = rng.uniform(-1.2, 1.2), rng.uniform(-0.3, 1.4)
        clip = ellipse(x, y, rng.uniform(0.03, 0.07), 0.02, rng.uniform(0, 180), n=8)
        cv2.fillPoly(layer, [frame.cv(clip)], int(rng.integers(180, 255)), cv2.LINE_AA, SHIFT)
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


@lru_cache(maxsize=32)
def ramps(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical [-1, 1] ramps (read-only, cached per size)."""
    xr = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    yr = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xr.setflags(write=False)
    yr.setflags(write=False)
    return xr, yr


def collimate(density: np.ndarray, widths: tuple[float, float, float, float]) -> None:
    """Bright collimator bands along the left, top, right and bottom edges."""
    h, w = density.shape
    left, top, right, bottom = (int(round(f * n)) for f, n in zip(widths, (w, h, w, h)))
    for band in (density[:, :left], density[:top], density[:, w - right :], density[h - bottom :]):
        if band.size and band.shape[0] and band.shape[1]:
            band[...] = np.maximum(band, 1.3)


def upsample(frame: Frame, img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (frame.width, frame.height), interpolation=cv2.INTER_LINEAR)


def expose(density: np.ndarray, pose: Pose, rng: np.random.Generator) -> np.ndarray:
    """Noise, windowing and gamma: density (float32, modified) to uint8."""
    h, w = density.shape
    xr, yr = ramps(h, w)
    density += pose.heel[0] * xr
    density += pose.heel[1] * yr
    collimate(density, pose.collimation)
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


def lateral_lung(dome: float, cp_post: float) -> np.ndarray:
    """Lung outline on a lateral view: anterior to the left, posterior right."""
    t = np.linspace(np.pi, 0.0, 14)
    arc = np.stack([0.02 + 0.88 * np.cos(t), 0.45 - 0.5 * np.sin(t)], axis=1)
    x = np.linspace(0.93, -0.84, 16)
    peak = -0.05
    y = dome + np.where(
        x > peak, (cp_post - dome) * ((x - peak) / (0.93 - peak)) ** 2, 0.14 * ((peak - x) / (0.84 + peak)) ** 2
    )
    return np.vstack([arc, [(0.93, cp_post - 0.1)], np.stack([x, y], 1)])


def lateral_soft(frame: Frame) -> np.ndarray:
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
    cv2.fillPoly(soft, [frame.cv(body, True)], 1.0, cv2.LINE_8, SHIFT)
    soft = blur(soft, frame.length(0.1, True))
    arms = np.zeros(shape, np.float32)
    cv2.fillPoly(arms, [frame.cv(ellipse(-0.35, -0.4, 0.75, 0.28, -25), True)], 0.25, cv2.LINE_8, SHIFT)
    soft += blur(arms, frame.length(0.12, True))
    return soft


def lateral_air(frame: Frame, domes: tuple[float, float], heart: np.ndarray) -> np.ndarray:
    """Aerated lungs (two overlapping domes), heart, trachea on a lateral view."""
    shape = (frame.lo_height, frame.lo_width)
    air = np.zeros(shape, np.float32)
    for dome in domes:
        one = np.zeros(shape, np.float32)
        cv2.fillPoly(one, [frame.cv(lateral_lung(dome, dome + 0.22), True)], 0.5, cv2.LINE_8, SHIFT)
        air += one
    depth = blur((air > 0).astype(np.float32), frame.length(0.2, True))
    air *= 0.35 + 0.65 * np.minimum(depth * 1.5, 1.0)
    factor = np.ones(shape, np.float32)
    cv2.fillPoly(factor, [frame.cv(heart, True)], 0.3, cv2.LINE_8, SHIFT)
    air *= factor
    tube = np.zeros(shape, np.float32)
    trachea = np.array([(-0.3, -2.5), (-0.18, -0.3), (0.0, 0.38)])
    cv2.polylines(
        tube, [frame.cv(trachea, True)], False, 0.55, max(1, int(round(frame.length(0.1, True)))), cv2.LINE_8, SHIFT
    )
    np.maximum(air, tube, out=air)
    return air


def lateral_bones(frame: Frame, patient: Patient) -> np.ndarray:
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
        elements.append(frame.cv(round_outline(frame, xc + 0.24, yc - 0.01, 0.05, n=10)))
    cv2.fillPoly(bone, bodies, 75, cv2.LINE_AA, SHIFT)
    cv2.fillPoly(bone, elements, 45, cv2.LINE_AA, SHIFT)
    ribs = [
        frame.cv(np.array([(1.05, y), (0.5, y + 0.12), (-0.2, y + 0.3), (-0.8, y + 0.45)]))
        for y in np.arange(-0.1, 0.75, 0.09 * patient.rib_spacing)
    ]
    cv2.polylines(bone, ribs, False, 32, max(1, int(round(frame.length(0.035)))), cv2.LINE_AA, SHIFT)
    sternum = np.array([(-0.93, 0.0), (-0.97, 0.35), (-0.93, 0.75)])
    cv2.polylines(bone, [frame.cv(sternum)], False, 80, max(1, int(round(frame.length(0.06)))), cv2.LINE_AA, SHIFT)
    scapula = np.array([(0.9, -0.2), (0.7, 0.15), (0.78, 0.5), (1.0, 0.3), (1.05, -0.1)])
    cv2.fillPoly(bone, [frame.cv(scapula)], 30, cv2.LINE_AA, SHIFT)
    return bone
