"""One phantom radiograph: the anatomy, the findings the table lists, the exposure.

Each call splits ``rng`` into independent streams (pose, noise, one per
finding), so adding a finding never changes anything else in the image.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from cxrssl.phantoms.anatomy import (
    air_layers,
    build_anatomy,
    draw_bones,
    draw_distractors,
    draw_vessels,
    expose,
    hila,
    lateral_air,
    lateral_bones,
    lateral_soft,
    soft_tissue,
    upsample,
)
from cxrssl.phantoms.canvas import Canvas
from cxrssl.phantoms.draw import (
    SHARP_DENSITY,
    Frame,
    blur,
    ellipse,
    make_frame,
    normalise_box,
    round_outline,
    smooth_noise,
)
from cxrssl.phantoms.findings import FINDINGS, LATERAL_ORDER, Finding, LateralBlob, plan_findings, stream_seeds
from cxrssl.phantoms.patient import Patient, Pose, Region, sample_pose

#: Accepted values of ``render``'s ``view`` argument.
VIEWS: tuple[str, ...] = ("PA", "AP", "lateral")


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
    seeds = stream_seeds(rng)
    plan = plan_findings(findings, float(contrast), seeds)
    pose = sample_pose(np.random.default_rng(seeds["pose"]), view)
    if view == "lateral":
        return render_lateral(patient, plan, pose, seeds, int(height), int(width))
    return render_frontal(patient, plan, pose, seeds, int(height), int(width))


def _present(plan: Mapping[str, Finding], order) -> list:
    """(label, its row of the table, its plan) for the planned findings, in ``order``."""
    return [(label, FINDINGS[label], plan[label]) for label in order if label in plan]


def render_frontal(
    patient: Patient, plan: dict[str, Finding], pose: Pose, seeds: Mapping[str, int], height: int, width: int
) -> tuple[np.ndarray, list[Region]]:
    """Draws a PA or AP radiograph and the regions of its findings."""
    present = _present(plan, FINDINGS)
    anat = build_anatomy(patient, pose, plan)
    frame = make_frame(patient, pose, height, width)
    soft = soft_tissue(frame, patient, anat)
    air, par = air_layers(frame, anat, pose)
    canvas = Canvas(frame, air > 0.05)
    hila(frame, canvas.extra)
    for _, spec, finding in present:
        if spec.draw is not None and (spec.shown is None or spec.shown(plan)):
            spec.draw(finding, canvas, anat)
    np.clip(canvas.opacity, 0.0, 1.0, out=canvas.opacity)
    noise_rng = np.random.default_rng(seeds["noise"])
    air_w = pose.air_weight * patient.lung_air
    clear = 1.0 - canvas.opacity
    texture = smooth_noise(noise_rng, clear.shape, max(8, frame.lo_width // 5), 0.9, 1.1)
    low = soft * (pose.soft_weight * patient.soft_tissue) - air * clear * texture * air_w + canvas.extra
    low += smooth_noise(noise_rng, low.shape, 6, -pose.mottle, pose.mottle)
    low = blur(low, 0.9)
    low += vessel_layer(frame, patient, pose, canvas, par * clear)
    density = upsample(frame, low)

    fractures = [fr for label, spec, finding in present if spec.bones is not None for fr in spec.bones(finding)]
    bone, fracture_boxes = draw_bones(frame, patient, pose, fractures)
    cv2.scaleAdd(bone.astype(np.float32), 0.0011 * patient.bone_density, density, dst=density)
    sharp = np.zeros((height, width), np.uint8)
    regions = list(canvas.regions)
    regions += [("Fracture", b) for b in fracture_boxes]
    for _, spec, finding in present:
        if spec.sharp is not None:
            regions += spec.sharp(finding, frame, anat, sharp)
    draw_distractors(np.random.default_rng(seeds["extras"]), frame, pose, sharp)
    cv2.scaleAdd(sharp.astype(np.float32), SHARP_DENSITY, density, dst=density)
    density = blur(density, pose.blur * min(height, width) / 320.0)
    img = expose(density, pose, noise_rng)
    return img, finish_regions(regions, plan, height, width)


def vessel_layer(frame: Frame, patient: Patient, pose: Pose, canvas: Canvas, visible: np.ndarray) -> np.ndarray:
    """Low-resolution vessel density, masked to aerated lung, blurred where edematous."""
    layer = draw_vessels(frame, patient).astype(np.float32)
    layer *= 0.15 * pose.vessels / 255.0
    if canvas.haze is not None:
        blurred = blur(layer, frame.length(0.04, True))
        layer += canvas.haze * (blurred * 1.4 - layer)
    layer *= visible
    return layer


def finish_regions(regions: list, plan: Mapping[str, Finding], height: int, width: int) -> list[Region]:
    """Normalises, clips and labels regions, then adds those that follow from them (the table's
    ``derived_regions``: a parenchymal finding's regions are also the lung opacity's)."""
    out: list[Region] = []
    for label, box in regions:
        norm = normalise_box(box, height, width)
        if norm is not None:
            out.append(Region(label, norm))
    for _, spec, _ in _present(plan, FINDINGS):
        if spec.derived_regions is not None:
            out += spec.derived_regions(plan, out)
    return out


def render_lateral(
    patient: Patient, plan: dict[str, Finding], pose: Pose, seeds: Mapping[str, int], height: int, width: int
) -> tuple[np.ndarray, list[Region]]:
    """Draws a lateral radiograph (patient facing left)."""
    frame = make_frame(patient, pose, height, width, depth_ratio=0.75)
    soft = lateral_soft(frame)
    dome_r = patient.dome_right + pose.dome_shift - 0.1
    dome_l = dome_r + patient.dome_left_drop
    enlarging = [(label, spec, f) for label, spec, f in _present(plan, FINDINGS) if spec.lateral_heart is not None]
    grow = 1.0
    for _, spec, finding in enlarging:
        grow = spec.lateral_heart(finding)
    heart = ellipse(-0.38, dome_l - 0.14, 0.42 * grow, 0.27 * grow, -28)
    air = lateral_air(frame, (dome_r, dome_l), heart)
    canvas = Canvas(frame, air > 0.05)
    regions: list = [(label, frame.box(heart, pad=0.02)) for label, _, _ in enlarging]
    present = _present(plan, LATERAL_ORDER)
    for _, spec, finding in present:
        shown = spec.lateral_shown or spec.shown
        if shown is not None and not shown(plan):
            continue
        if spec.lateral is not None:
            spec.lateral(finding, canvas, dome_r, dome_l)
        elif spec.lateral_blob is not None:
            lateral_blob(finding, spec.lateral_blob, canvas, dome_r)
    np.clip(canvas.opacity, 0.0, 1.0, out=canvas.opacity)
    noise_rng = np.random.default_rng(seeds["noise"])
    clear = 1.0 - canvas.opacity
    texture = smooth_noise(noise_rng, clear.shape, max(8, frame.lo_width // 5), 0.9, 1.1)
    low = (
        soft * (pose.soft_weight * patient.soft_tissue * 1.1)
        - air * clear * texture * pose.air_weight * patient.lung_air
        + canvas.extra
    )
    low += smooth_noise(noise_rng, low.shape, 6, -pose.mottle, pose.mottle)
    density = upsample(frame, blur(low, 0.9))
    bone = lateral_bones(frame, patient)
    cv2.scaleAdd(bone.astype(np.float32), 0.0011 * patient.bone_density, density, dst=density)
    sharp = np.zeros((height, width), np.uint8)
    for label, spec, finding in present:
        if spec.lateral_sharp is not None:
            regions += [(label, b) for b in spec.lateral_sharp(finding, frame, sharp, dome_l)]
    draw_distractors(np.random.default_rng(seeds["extras"]), frame, pose, sharp)
    cv2.scaleAdd(sharp.astype(np.float32), SHARP_DENSITY, density, dst=density)
    density = blur(density, pose.blur * min(height, width) / 320.0)
    img = expose(density, pose, noise_rng)
    return img, finish_regions(regions + canvas.regions, plan, height, width)


def lateral_blob(f: Finding, blob: LateralBlob, canvas: Canvas, dome_r: float) -> None:
    """A parenchymal finding on a lateral view: a round opacity at its place, or somewhere in the lungs."""
    rng = f.rng
    v = min(f.vis, 1.0)
    cx, cy = blob.center if blob.center is not None else (rng.uniform(-0.5, 0.6), rng.uniform(0.15, dome_r - 0.1))
    layer = canvas.layer()
    r = blob.r0 + (blob.r1 - blob.r0) * v
    canvas.fill(layer, round_outline(canvas.frame, cx, cy, r))
    canvas.add(f.label, layer, 0.15 + 0.7 * v, blob.sigma)
