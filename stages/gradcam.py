"""Stage ``gradcam``: class activation maps of each init's classifier, scored against the phantoms' regions.

    python -m stages.gradcam data/preprocessed data/splits models/finetune \\
        metrics/gradcam.json plots/gradcam plots/gradcam_grid.jpg

HiResCAM or Grad-CAM (``gradcam.method``) at ``gradcam.layer``, for the
classifiers at ``gradcam.pct`` (first seed), on the test split:

* ``metrics/gradcam.json``: ``{init: {class: {pointing_game,
  pointing_game_low, pointing_game_high, energy_inside, n}}, "center_prior":
  {class: {...}}}`` (the pointing game's Wilson 95% interval) over the test images that are
  positive for the class and have its region drawn (the phantoms'
  ``regions.csv``, which preprocess copies into the store; a dataset without
  boxes gets no scores, only overlays);
* ``plots/gradcam/<init>/<class>-<row>.png``: overlays for a fixed, seeded
  choice of ``gradcam.per_class`` positive test images per class (the same
  images for every init);
* ``plots/gradcam_grid.jpg``: one image per localised class (rows) against
  the inits (columns);
* ``plots/gradcam/real/``: with ``gradcam.real_images`` set, overlays of
  those radiographs by the classifier with the best val macro AUROC.

Only the maps of the chosen overlays are kept; memory stays flat over the test set.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from cxrssl.cells import SCORE_COLUMNS, model_files, read_predictions
from cxrssl.cli import check_name, run
from cxrssl.data.images import PreprocessConfig, load_and_preprocess
from cxrssl.data.schema import CLASSES, REGION_COLUMNS, REGIONS
from cxrssl.data.splits import read_split
from cxrssl.data.store import ImageStore
from cxrssl.errors import DataError, ParamError
from cxrssl.finetune import load_classifier, macro_auroc
from cxrssl.gradcam import (
    LOCALISED,
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
from cxrssl.io import atomic_dir, atomic_file, write_json
from cxrssl.params import check_list, from_dict, read_params
from cxrssl.views import normalize, to_float

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


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


def best_init(finetune: Path, inits: list[str], pct: int, val: pd.DataFrame) -> tuple[str, float]:
    """The init whose classifier at ``pct`` has the best val macro AUROC (test is not looked at)."""
    scores = {}
    for init in inits:
        frame = read_predictions(finetune / f"{init}-{pct}")
        part = frame[frame["split"] == "val"].groupby("row")[SCORE_COLUMNS].mean()
        scores[init] = macro_auroc(val[list(CLASSES)].to_numpy(dtype=float), part.loc[val["row"]].to_numpy())
    best = max(scores, key=scores.get)
    return best, scores[best]


def explain(model, layer, images: np.ndarray, batch_size: int, method: str, wanted: list[list[int]] | None = None):
    """Yield (start, maps (B, classes, h, w), probabilities (B, classes)) over uint8 images in batches.

    ``wanted``: per image, the classes whose maps are needed (the others are
    left zero); one backward pass per class slot, so asking for the two or
    three classes an image needs instead of all 14 is several times faster.
    """
    for start in range(0, len(images), batch_size):
        x = normalize(to_float(torch.from_numpy(images[start:start + batch_size])))
        if wanted is None:
            rows = [list(range(len(CLASSES)))] * len(x)
        else:
            rows = [wanted[i] or [0] for i in range(start, start + len(x))]
        width = max(len(r) for r in rows)
        targets = torch.tensor([r + [r[0]] * (width - len(r)) for r in rows])  # padded with a repeat
        maps, logits = grad_cam(model, layer, x, targets, method)
        cams = torch.zeros(len(x), len(CLASSES), *maps.shape[-2:])
        cams.scatter_(1, targets[:, :, None, None].expand_as(maps), maps)
        yield start, cams, torch.sigmoid(logits)


def score(maps: torch.Tensor, masks: torch.Tensor, grown: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Pointing game (against the regions grown by the tolerance) and energy inside, for (N, h, w) maps."""
    return pointing_game(maps, grown).numpy(), energy_inside(upsample(maps, masks.shape[-1]), masks).numpy()


def summarise(hits: dict[int, list], energy: dict[int, list]) -> dict:
    """Per class: the pointing game's hit rate with its Wilson 95% interval, the mean energy inside, n."""
    out = {}
    for k in sorted(hits):
        interval = binomtest(int(np.sum(hits[k])), len(hits[k])).proportion_ci(0.95, method="wilson")
        out[CLASSES[k]] = {"pointing_game": round(float(np.mean(hits[k])), 4),
                           "pointing_game_low": round(float(interval.low), 4),
                           "pointing_game_high": round(float(interval.high), 4),
                           "energy_inside": round(float(np.mean(energy[k])), 4), "n": len(hits[k])}
    return out


def save_png(path: Path, picture: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", picture)
    if not ok:
        raise DataError(f"{path}: could not encode the PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())


def grid_figure(path: Path, rows: list[dict], inits: list[str], title: str) -> None:
    """Rows of (X-ray, one Grad-CAM per init) for the same images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    figure, axes = plt.subplots(len(rows), len(inits) + 1, figsize=(1.7 * (len(inits) + 1), 1.9 * len(rows)),
                                squeeze=False)
    for r, row in enumerate(rows):
        side = row["image"].shape[0]
        for c in range(len(inits) + 1):
            axis = axes[r, c]
            axis.imshow(row["image"], cmap="gray", vmin=0, vmax=255, interpolation="bicubic")
            if c:
                cam = row["cams"][inits[c - 1]]
                peak = cam.max()
                axis.imshow(cam / peak if peak > 0 else cam, cmap="jet", alpha=0.45, vmin=0, vmax=1,
                            interpolation="bilinear", extent=(-0.5, side - 0.5, side - 0.5, -0.5))
                axis.set_title(f"{inits[c - 1]} p={row['probs'][inits[c - 1]]:.2f}", fontsize=7)
            else:
                axis.set_title(row["label"], fontsize=7)
            for x0, y0, x1, y1 in row["boxes"]:
                axis.add_patch(Rectangle((x0 * side - 0.5, y0 * side - 0.5), (x1 - x0) * side, (y1 - y0) * side,
                                         fill=False, edgecolor="lime", linewidth=0.8))
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(f"{title} of each init's classifier (green: ground-truth region)", fontsize=9)
    figure.tight_layout()
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="jpg", dpi=90, pil_kwargs={"quality": 88})
    plt.close(figure)


def nih_labels(folder: Path) -> dict[str, str]:
    """{image file name: NIH 'Finding Labels'} from a Data_Entry_2017*.csv in the folder or its parent."""
    for candidate in sorted([*folder.glob("Data_Entry_2017*.csv"), *folder.parent.glob("Data_Entry_2017*.csv")]):
        table = pd.read_csv(candidate)
        if {"Image Index", "Finding Labels"} <= set(table.columns):
            return dict(zip(table["Image Index"], table["Finding Labels"], strict=True))
    return {}


def real_overlays(folder: Path, out: Path, model, layer, preprocess: PreprocessConfig, batch_size: int,
                  method: str, label: str) -> int:
    """Overlays of every radiograph in ``folder``: the map of the most probable finding (not No Finding)."""
    if not folder.is_dir():
        raise ParamError(f"params: gradcam.real_images is {str(folder)!r}; expected a folder of PNG or JPEG images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no PNG or JPEG images (gradcam.real_images)")
    labels = nih_labels(folder)
    images = np.stack([load_and_preprocess(p, preprocess) for p in files])
    findings = [k for k, name in enumerate(CLASSES) if name != "No Finding"]
    for start, cams, probs in explain(model, layer, images, batch_size, method):
        for j in range(len(cams)):
            i = start + j
            k = max(findings, key=lambda c: float(probs[j, c]))
            lines = [f"{files[i].name}  {label}", f"model: {CLASSES[k]} p={probs[j, k]:.2f}"]
            if files[i].name in labels:
                lines.append(f"NIH: {labels[files[i].name]}")
            save_png(out / f"{files[i].stem}.png", overlay(images[i], cams[j, k].numpy(), [], lines))
    return len(files)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Grad-CAM maps and their localisation scores.")
    parser.add_argument("store", type=Path, help="the preprocessed store folder")
    parser.add_argument("splits", type=Path, help="the split stage's folder")
    parser.add_argument("finetune", type=Path, help="the finetune stages' parent folder")
    parser.add_argument("metrics", type=Path, help="where to write the localisation scores (JSON)")
    parser.add_argument("plots", type=Path, help="folder for the overlays")
    parser.add_argument("grid", type=Path, help="where to write the figure comparing the inits (JPEG)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = read_params(args.params)
    config = from_dict(GradcamConfig, "gradcam", params.get("gradcam"))
    inits = [check_name("inits", init) for init in check_list("inits", params.get("inits"), str)]
    percents = check_list("label_percents", params.get("label_percents"), int)
    if config.pct not in percents:
        raise ParamError(f"params: gradcam.pct is {config.pct}; expected one of label_percents {percents}")
    preprocess = from_dict(PreprocessConfig, "preprocess", params.get("preprocess"))

    labels = list(CLASSES)
    test = read_split(args.splits, "test", ["row", "Path", *labels])
    store = ImageStore(args.store)
    regions = read_regions(args.store / REGIONS, test)
    chosen = choose_overlays(test, regions, config.per_class, config.seed)
    needed = sorted({i for i, _ in regions} | {i for rows in chosen.values() for i in rows})
    images = store.load(test["row"].to_numpy()[needed]) if needed else np.zeros((0, store.size, store.size),
                                                                                   np.uint8)
    where = {i: n for n, i in enumerate(needed)}
    size = store.size
    wanted_by_row: dict[int, set[int]] = {i: set() for i in needed}  # the classes scored or overlaid
    for i, k in regions:
        wanted_by_row[i].add(k)
    for k, rows in chosen.items():
        for i in rows:
            wanted_by_row[i].add(k)
    wanted = [sorted(wanted_by_row[i]) for i in needed]
    masks = {key: torch.from_numpy(box_mask(boxes, size)) for key, boxes in regions.items()}
    grown = {key: torch.from_numpy(box_mask(boxes, size, config.tolerance)) for key, boxes in regions.items()}
    start_time = time.perf_counter()

    summary: dict = {}
    kept: dict[str, dict] = {}
    with atomic_dir(args.plots) as tmp:
        for init in inits:
            first = next(iter(model_files(args.finetune / f"{init}-{config.pct}").values()))
            model, meta = load_classifier(first)
            if meta.get("image_size") != size or list(meta.get("classes", [])) != labels:
                raise DataError(f"{first}: made for {meta.get('image_size')} px images and classes "
                                f"{meta.get('classes')}; the store has {size} px; rerun finetune@{init}-{config.pct}")
            layer = target_layer(model.backbone, config.layer)
            hits: dict[int, list] = {}
            energy: dict[int, list] = {}
            kept[init] = {}
            for start, cams, probs in explain(model, layer, images, config.batch_size, config.method, wanted):
                batch = needed[start:start + len(cams)]
                pairs = [(j, k) for j, i in enumerate(batch) for k in range(len(labels)) if (i, k) in masks]
                if pairs:
                    js, ks = map(list, zip(*pairs, strict=True))
                    hit, share = score(cams[js, ks], torch.stack([masks[(batch[j], k)] for j, k in pairs]),
                                       torch.stack([grown[(batch[j], k)] for j, k in pairs]))
                    for (_, k), h, e in zip(pairs, hit, share, strict=True):
                        hits.setdefault(k, []).append(bool(h))
                        energy.setdefault(k, []).append(float(e))
                for k, rows in chosen.items():
                    for i in rows:
                        if start <= where[i] < start + len(cams):
                            j = where[i] - start
                            kept[init][(i, k)] = (cams[j, k].numpy().copy(), float(probs[j, k]))
            summary[init] = summarise(hits, energy)
            for (i, k), (cam, prob) in kept[init].items():
                boxes = regions.get((i, k), [])
                hit = ""
                if boxes:
                    inside = bool(pointing_game(torch.from_numpy(cam)[None], grown[(i, k)][None])[0])
                    hit = "  peak inside" if inside else "  peak outside"
                lines = [f"{labels[k]}  ({init}, {config.pct}% labels, {METHODS[config.method]})",
                         f"p = {prob:.2f}  label {int(test[labels[k]].iat[i])}{hit}"]
                save_png(tmp / init / f"{slug(labels[k])}-{int(test['row'].iat[i])}.png",
                         overlay(images[where[i]], cam, boxes, lines))
        prior = center_prior(size, config.center_sigma)
        hits, energy = {}, {}
        for key, mask in masks.items():
            h, e = score(prior[None], mask[None], grown[key][None])
            k = key[1]
            hits.setdefault(k, []).append(bool(h[0]))
            energy.setdefault(k, []).append(float(e[0]))
        summary["center_prior"] = summarise(hits, energy)
        n_real = 0
        if config.real_images:
            best, val_auroc = best_init(args.finetune, inits, config.pct, read_split(args.splits, "val",
                                                                                     ["row", *labels]))
            model, _ = load_classifier(next(iter(model_files(args.finetune / f"{best}-{config.pct}").values())))
            n_real = real_overlays(Path(config.real_images), tmp / "real", model,
                                   target_layer(model.backbone, config.layer), preprocess, config.batch_size,
                                   config.method, f"{best} {config.pct}% (best val AUROC {val_auroc:.3f})")
        rows = []
        shown = [k for k in chosen if labels[k] in LOCALISED] or list(chosen)  # other datasets: any class
        for k, name in enumerate(labels):
            if k in shown:
                i = chosen[k][0]
                rows.append({"label": f"{name} (row {int(test['row'].iat[i])})", "image": images[where[i]],
                             "boxes": regions.get((i, k), []),
                             "cams": {init: kept[init][(i, k)][0] for init in inits},
                             "probs": {init: kept[init][(i, k)][1] for init in inits}})
        if not rows:
            raise DataError(f"{args.splits / 'test.csv'}: no test image is positive for any class; nothing to show")
        grid_figure(args.grid, rows, inits, f"{METHODS[config.method]} at {config.layer}")
        write_json(args.metrics, summary)
    if not regions:
        print(f"gradcam: no ground-truth regions ({args.store / REGIONS} has none); overlays only, "
              "no localisation scores")
    for name in LOCALISED:
        k = labels.index(name)
        if k in hits:
            line = "  ".join(f"{init} {summary[init][name]['pointing_game']:.2f}" for init in [*inits, "center_prior"]
                             if name in summary[init])
            print(f"gradcam: {name:17s} pointing game  {line}  (n={len(hits[k])})")
    print(f"gradcam: {METHODS[config.method]} at {config.layer}, {len(inits)} inits at {config.pct}%, "
          f"{len(needed)} test images, {n_real} real images, {time.perf_counter() - start_time:.1f} s")


if __name__ == "__main__":
    run(main, "gradcam")
