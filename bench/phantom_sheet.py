"""Contact sheet of phantom radiographs, for looking at the renderer's output.

Usage:
    python bench/phantom_sheet.py OUT.png [--size 320] [--downscale 64]
        [--boxes] [--seed 0] [--contrast 1.0]

Draws 24 images (normals, each finding positive and uncertain, lateral views)
with their labels as titles; ``--boxes`` outlines the returned regions and
``--downscale N`` shows the images after resizing to NxN (what a small CNN sees).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cxrssl.phantoms import render, sample_patient  # noqa: E402

#: (title, findings, view) of each cell.
CASES: list[tuple[str, dict[str, float], str]] = [
    ("normal PA", {}, "PA"),
    ("normal AP", {}, "AP"),
    ("normal F", {}, "PA"),
    ("Cardiomegaly", {"Cardiomegaly": 1.0}, "PA"),
    ("Enl. Cardiomed.", {"Enlarged Cardiomediastinum": 1.0}, "PA"),
    ("Effusion", {"Pleural Effusion": 1.0}, "PA"),
    ("Effusion ?", {"Pleural Effusion": -1.0}, "PA"),
    ("Pneumothorax", {"Pneumothorax": 1.0}, "PA"),
    ("Edema", {"Edema": 1.0, "Lung Opacity": 1.0}, "AP"),
    ("Consolidation", {"Consolidation": 1.0, "Lung Opacity": 1.0}, "PA"),
    ("Pneumonia", {"Pneumonia": 1.0, "Lung Opacity": 1.0}, "PA"),
    ("Atelectasis", {"Atelectasis": 1.0}, "PA"),
    ("Lung Lesion", {"Lung Lesion": 1.0}, "PA"),
    ("Lung Opacity", {"Lung Opacity": 1.0}, "PA"),
    ("Pleural Other", {"Pleural Other": 1.0}, "PA"),
    ("Fracture", {"Fracture": 1.0}, "PA"),
    ("Support Dev.", {"Support Devices": 1.0}, "AP"),
    ("Support Dev. ?", {"Support Devices": -1.0}, "AP"),
    ("CHF: CM+Ed+Eff+SD", {"Cardiomegaly": 1.0, "Edema": 1.0, "Pleural Effusion": 1.0, "Support Devices": 1.0}, "AP"),
    ("Consol ?", {"Consolidation": -1.0}, "PA"),
    ("lateral normal", {}, "lateral"),
    ("lateral CM+Eff", {"Cardiomegaly": 1.0, "Pleural Effusion": 1.0}, "lateral"),
    ("Pneumothorax ?", {"Pneumothorax": -1.0}, "PA"),
    ("Edema ?", {"Edema": -1.0}, "PA"),
]


def main(argv: list[str] | None = None) -> int:
    """Writes the contact sheet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--downscale", type=int, default=0)
    parser.add_argument("--boxes", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--contrast", type=float, default=1.0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    fig, axes = plt.subplots(4, 6, figsize=(18, 12.5))
    for ax, (title, findings, view) in zip(axes.ravel(), CASES):
        sex = "Female" if title == "normal F" else str(rng.choice(["Male", "Female"]))
        patient = sample_patient(rng, sex, int(rng.integers(20, 90)))
        img, regions = render(patient, findings, view, rng, args.size, args.size, contrast=args.contrast)
        if args.downscale:
            img = cv2.resize(img, (args.downscale, args.downscale), interpolation=cv2.INTER_AREA)
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        h, w = img.shape
        if args.boxes:
            for r in regions:
                x0, y0, x1, y1 = r.box
                ax.add_patch(
                    plt.Rectangle(
                        (x0 * w - 0.5, y0 * h - 0.5), (x1 - x0) * w, (y1 - y0) * h, fill=False, lw=1, color="tab:red"
                    )
                )
        ax.set_title(f"{title} [{view}]", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=70)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
