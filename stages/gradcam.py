"""Stage ``gradcam``: class activation maps of each init's classifier, scored against the phantoms' regions.

    python -m stages.gradcam data/preprocessed data/splits models/finetune \\
        metrics/gradcam.json plots/gradcam plots/gradcam_grid.jpg

HiResCAM or Grad-CAM (``gradcam.method``) at ``gradcam.layer``, for the
classifiers at ``gradcam.pct`` (first seed), on the test split
(:mod:`cxrssl.localisation`):

* ``metrics/gradcam.json``: ``{init: {class: {pointing_game,
  pointing_game_low, pointing_game_high, energy_inside, n}}, "center_prior":
  {class: {...}}}`` (the pointing game's Wilson 95% interval) over the test
  images that are positive for the class and have its region drawn (the
  phantoms' ``regions.csv``, which preprocess copies into the store; a
  dataset without boxes gets no scores, only overlays);
* ``plots/gradcam/<init>/<class>-<row>.png``: overlays for a fixed, seeded
  choice of ``gradcam.per_class`` positive test images per class (the same
  images for every init);
* ``plots/gradcam_grid.jpg``: one image per localised class (rows) against the inits (columns).

Maps of new radiographs: ``python -m cxrssl.predict ... --cam DIR``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cxrssl.cli import check_name, run, stage_parser
from cxrssl.data.schema import CLASSES, REGIONS
from cxrssl.data.splits import read_split
from cxrssl.data.store import ImageStore
from cxrssl.errors import DataError, ParamError
from cxrssl.gradcam import LOCALISED, METHODS, GradcamConfig
from cxrssl.io import atomic_dir, write_json
from cxrssl.localisation import (
    Targets,
    centre_prior_scores,
    grid_rows,
    load_cell_classifier,
    localise,
    read_regions,
)
from cxrssl.params import check_list, from_dict, read_params
from cxrssl.plots import grid_figure


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(
        "Grad-CAM maps and their localisation scores.",
        {
            "store": "the preprocessed store folder",
            "splits": "the split stage's folder",
            "finetune": "the finetune stages' parent folder",
            "metrics": "where to write the localisation scores (JSON)",
            "plots": "folder for the overlays",
            "grid": "where to write the figure comparing the inits (JPEG)",
        },
    )
    args = parser.parse_args(argv)
    params = read_params(args.params)
    config = from_dict(GradcamConfig, "gradcam", params.get("gradcam"))
    inits = [check_name("inits", init) for init in check_list("inits", params.get("inits"), str)]
    percents = check_list("label_percents", params.get("label_percents"), int)
    if config.pct not in percents:
        raise ParamError(f"params: gradcam.pct is {config.pct}; expected one of label_percents {percents}")

    start = time.perf_counter()
    test = read_split(args.splits, "test", ["row", "Path", *CLASSES])
    store = ImageStore(args.store)
    targets = Targets(test, read_regions(args.store / REGIONS, test), config, store.size)
    images = (
        store.load(test["row"].to_numpy()[targets.needed])
        if targets.needed
        else np.zeros((0, store.size, store.size), np.uint8)
    )
    summary, kept = {}, {}
    with atomic_dir(args.plots) as tmp:
        for init in inits:
            model = load_cell_classifier(args.finetune, f"{init}-{config.pct}", store.size)
            summary[init], kept[init] = localise(model, init, images, test, targets, config, tmp / init)
        summary["center_prior"] = centre_prior_scores(targets, store.size, config.center_sigma)
        rows = grid_rows(test, targets, images, kept)
        if not rows:
            raise DataError(f"{args.splits / 'test.csv'}: no test image is positive for any class; nothing to show")
        grid_figure(args.grid, rows, inits, f"{METHODS[config.method]} at {config.layer}")
        write_json(args.metrics, summary)
    report(summary, inits, targets, config, time.perf_counter() - start, args.store / REGIONS)


def report(
    summary: dict, inits: list[str], targets: Targets, config: GradcamConfig, seconds: float, regions: Path
) -> None:
    if not targets.regions:
        print(f"gradcam: no ground-truth regions ({regions} has none); overlays only, no localisation scores")
    for name in LOCALISED:
        if name in summary["center_prior"]:
            line = "  ".join(
                f"{init} {summary[init][name]['pointing_game']:.2f}"
                for init in [*inits, "center_prior"]
                if name in summary[init]
            )
            print(f"gradcam: {name:17s} pointing game  {line}  (n={summary['center_prior'][name]['n']})")
    print(
        f"gradcam: {METHODS[config.method]} at {config.layer}, {len(inits)} inits at {config.pct}%, "
        f"{len(targets.needed)} test images, {seconds:.1f} s"
    )


if __name__ == "__main__":
    run(main, "gradcam")
