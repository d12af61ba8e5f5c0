"""Localisation of the study's classifiers: Grad-CAM/HiResCAM maps scored against the phantoms' regions.

What the gradcam stage runs (:func:`localise`): for every init's classifier at
one label percent, the maps of the test images that are positive for a class
whose region the dataset draws, scored by the pointing game (with its Wilson
interval) and the energy inside, beside a centre prior scored the same way;
and the maps of a seeded choice of images per class, for overlays and a grid
figure. Only those maps are kept, so memory stays flat over the test set.
The map methods themselves are in :mod:`cxrssl.gradcam`.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from cxrssl.cells import model_files
from cxrssl.data.schema import CLASSES, REGION_COLUMNS
from cxrssl.errors import DataError
from cxrssl.finetune import load_classifier
from cxrssl.gradcam import (
    METHODS,
    GradcamConfig,
    box_mask,
    center_prior,
    energy_inside,
    grad_cam,
    overlay,
    pointing_game,
    target_layer,
    upsample,
)
from cxrssl.views import normalize, to_float


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def read_regions(path: Path, test: pd.DataFrame) -> dict[tuple[int, int], list[tuple]]:
    """{(test position, class index): boxes} for the test images positive for the class."""
    if not path.is_file():
        return {}
    regions = pd.read_csv(path)
    missing = [c for c in REGION_COLUMNS if c not in regions.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; regenerate the phantoms")
    unknown = sorted(set(regions["label"]) - set(CLASSES))
    if unknown:
        raise DataError(f"{path}: unknown label {unknown[0]!r}")
    position = pd.Series(np.arange(len(test)), index=test["Path"].to_numpy())
    regions = regions[regions["Path"].isin(position.index)]
    out: dict[tuple[int, int], list[tuple]] = {}
    for (image, label), group in regions.groupby(["Path", "label"], sort=False):
        i, k = int(position[image]), CLASSES.index(label)
        if test[label].iat[i] == 1:
            out[(i, k)] = [tuple(map(float, box)) for box in group[["x0", "y0", "x1", "y1"]].to_numpy()]
    return out


def choose_overlays(test: pd.DataFrame, regions: dict, per_class: int, seed: int) -> dict[int, list[int]]:
    """{class index: test positions}: a seeded choice among the positives (with a region where there are any)."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for k, name in enumerate(CLASSES):
        with_region = [i for (i, kk) in regions if kk == k]
        pool = sorted(with_region) if with_region else np.flatnonzero(test[name].to_numpy() == 1).tolist()
        if pool and per_class:
            chosen[k] = sorted(rng.choice(pool, size=min(per_class, len(pool)), replace=False).tolist())
    return chosen


def explain(model, layer, images: np.ndarray, batch_size: int, method: str, wanted: list[list[int]] | None = None):
    """Yield (start, maps (B, classes, h, w), probabilities (B, classes)) over uint8 images in batches.

    ``wanted``: per image, the classes whose maps are needed (the others are
    left zero); one backward pass per class slot, so asking for the two or
    three classes an image needs instead of all 14 is several times faster.
    """
    device = next(model.parameters()).device
    for start in range(0, len(images), batch_size):
        x = normalize(to_float(torch.from_numpy(images[start : start + batch_size]).to(device)))
        if wanted is None:
            rows = [list(range(len(CLASSES)))] * len(x)
        else:
            rows = [wanted[i] or [0] for i in range(start, start + len(x))]
        width = max(len(r) for r in rows)
        targets = torch.tensor([r + [r[0]] * (width - len(r)) for r in rows])  # padded with a repeat
        maps, logits = grad_cam(model, layer, x, targets, method)
        maps = maps.cpu()
        cams = torch.zeros(len(x), len(CLASSES), *maps.shape[-2:])
        cams.scatter_(1, targets[:, :, None, None].expand_as(maps), maps)
        yield start, cams, torch.sigmoid(logits).cpu()


def score(maps: torch.Tensor, masks: torch.Tensor, grown: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Pointing game (against the regions grown by the tolerance) and energy inside, for (N, h, w) maps."""
    return pointing_game(maps, grown).numpy(), energy_inside(upsample(maps, masks.shape[-1]), masks).numpy()


def summarise(hits: dict[int, list], energy: dict[int, list]) -> dict:
    """Per class: the pointing game's hit rate with its Wilson 95% interval, the mean energy inside, n."""
    out = {}
    for k in sorted(hits):
        interval = binomtest(int(np.sum(hits[k])), len(hits[k])).proportion_ci(0.95, method="wilson")
        out[CLASSES[k]] = {
            "pointing_game": round(float(np.mean(hits[k])), 4),
            "pointing_game_low": round(float(interval.low), 4),
            "pointing_game_high": round(float(interval.high), 4),
            "energy_inside": round(float(np.mean(energy[k])), 4),
            "n": len(hits[k]),
        }
    return out


def save_png(path: Path, picture: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", picture)
    if not ok:
        raise DataError(f"{path}: could not encode the PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())


class Targets:
    """Which test images are explained, for which classes, and against which regions.

    Attributes:
        regions: {(test position, class index): boxes} of the positives with a drawn region.
        chosen: {class index: test positions} shown as overlays.
        needed: the test positions whose maps are computed, in order; ``where`` their index there.
        wanted: per needed image, the classes whose maps are needed.
        masks, grown: per region, its mask and the mask grown by the pointing game's tolerance.
    """

    def __init__(self, test: pd.DataFrame, regions: dict, config: GradcamConfig, size: int):
        self.regions = regions
        self.chosen = choose_overlays(test, regions, config.per_class, config.seed)
        self.needed = sorted({i for i, _ in regions} | {i for rows in self.chosen.values() for i in rows})
        self.where = {i: n for n, i in enumerate(self.needed)}
        by_row: dict[int, set[int]] = {i: set() for i in self.needed}  # the classes scored or overlaid
        for i, k in regions:
            by_row[i].add(k)
        for k, rows in self.chosen.items():
            for i in rows:
                by_row[i].add(k)
        self.wanted = [sorted(by_row[i]) for i in self.needed]
        self.masks = {key: torch.from_numpy(box_mask(boxes, size)) for key, boxes in regions.items()}
        self.grown = {key: torch.from_numpy(box_mask(boxes, size, config.tolerance)) for key, boxes in regions.items()}


def localise(
    model, init: str, images: np.ndarray, test: pd.DataFrame, targets: Targets, config: GradcamConfig, overlays: Path
) -> tuple[dict, dict]:
    """One classifier's localisation scores, and its maps of the chosen images (also saved as overlays).

    Args:
        images: the needed test images (``targets.needed``), uint8.
        overlays: folder for ``<class>-<row>.png``.

    Returns:
        ``summarise``'s scores per class, and ``{(test position, class): (map, probability)}``.
    """
    labels = list(CLASSES)
    layer = target_layer(model.backbone, config.layer)
    hits: dict[int, list] = {}
    energy: dict[int, list] = {}
    kept: dict[tuple[int, int], tuple[np.ndarray, float]] = {}
    for start, cams, probs in explain(model, layer, images, config.batch_size, config.method, targets.wanted):
        batch = targets.needed[start : start + len(cams)]
        pairs = [(j, k) for j, i in enumerate(batch) for k in range(len(labels)) if (i, k) in targets.masks]
        if pairs:
            js, ks = map(list, zip(*pairs, strict=True))
            hit, share = score(
                cams[js, ks],
                torch.stack([targets.masks[(batch[j], k)] for j, k in pairs]),
                torch.stack([targets.grown[(batch[j], k)] for j, k in pairs]),
            )
            for (_, k), h, e in zip(pairs, hit, share, strict=True):
                hits.setdefault(k, []).append(bool(h))
                energy.setdefault(k, []).append(float(e))
        for k, rows in targets.chosen.items():
            for i in rows:
                if start <= targets.where[i] < start + len(cams):
                    j = targets.where[i] - start
                    kept[(i, k)] = (cams[j, k].numpy().copy(), float(probs[j, k]))
    for (i, k), (cam, prob) in kept.items():
        boxes = targets.regions.get((i, k), [])
        hit = ""
        if boxes:
            inside = bool(pointing_game(torch.from_numpy(cam)[None], targets.grown[(i, k)][None])[0])
            hit = "  peak inside" if inside else "  peak outside"
        lines = [
            f"{labels[k]}  ({init}, {config.pct}% labels, {METHODS[config.method]})",
            f"p = {prob:.2f}  label {int(test[labels[k]].iat[i])}{hit}",
        ]
        save_png(
            overlays / f"{slug(labels[k])}-{int(test['row'].iat[i])}.png",
            overlay(images[targets.where[i]], cam, boxes, lines),
        )
    return summarise(hits, energy), kept


def centre_prior_scores(targets: Targets, size: int, sigma: float) -> dict:
    """The centre prior (a fixed centred Gaussian) scored like a map, over the same regions."""
    prior = center_prior(size, sigma)
    hits: dict[int, list] = {}
    energy: dict[int, list] = {}
    for key, mask in targets.masks.items():
        h, e = score(prior[None], mask[None], targets.grown[key][None])
        hits.setdefault(key[1], []).append(bool(h[0]))
        energy.setdefault(key[1], []).append(float(e[0]))
    return summarise(hits, energy)


def grid_rows(test: pd.DataFrame, targets: Targets, images: np.ndarray, kept: dict[str, dict]) -> list[dict]:
    """One row per localised class (any class on other datasets): its first chosen image and every init's map."""
    from cxrssl.gradcam import LOCALISED

    labels = list(CLASSES)
    shown = [k for k in targets.chosen if labels[k] in LOCALISED] or list(targets.chosen)
    rows = []
    for k in sorted(shown):
        i = targets.chosen[k][0]
        rows.append(
            {
                "label": f"{labels[k]} (row {int(test['row'].iat[i])})",
                "image": images[targets.where[i]],
                "boxes": targets.regions.get((i, k), []),
                "cams": {init: maps[(i, k)][0] for init, maps in kept.items()},
                "probs": {init: maps[(i, k)][1] for init, maps in kept.items()},
            }
        )
    return rows


def load_cell_classifier(finetune: Path, cell: str, size: int):
    """The first seed's classifier of a finetune cell, checked against the store's image size and the classes."""
    first = next(iter(model_files(finetune / cell).values()))
    model, meta = load_classifier(first)
    if meta.get("image_size") != size or list(meta.get("classes", [])) != list(CLASSES):
        raise DataError(
            f"{first}: made for {meta.get('image_size')} px images and classes {meta.get('classes')}; "
            f"the store has {size} px; rerun finetune@{cell}"
        )
    return model
