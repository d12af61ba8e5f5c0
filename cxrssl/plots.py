"""The evaluate stage's plots: CSV files that ``dvc plots show`` renders, and PNGs made with matplotlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrssl.cells import SCORE_COLUMNS
from cxrssl.data.schema import CLASSES
from cxrssl.io import atomic_file, write_csv
from cxrssl.metrics import pr_points, roc_points

GRID = np.linspace(0, 1, 51)


def label_efficiency(summary: dict, inits: list[str], percents: list[int], split: str = "test") -> pd.DataFrame:
    """Wide table: one row per label percent, one column per init (macro AUROC on ``split``) plus its interval."""
    key = "auroc_macro" if split == "test" else f"{split}_auroc_macro"
    rows = []
    for pct in percents:
        row: dict = {"pct": pct}
        for init in inits:
            cell = summary[init][str(pct)]
            row[init] = cell[key]
            row[f"{init}_low"], row[f"{init}_high"] = cell[f"{key}_low"], cell[f"{key}_high"]
        rows.append(row)
    return pd.DataFrame(rows)


def curves(y: np.ndarray, scores: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC (TPR at an FPR grid) and PR (interpolated precision at a recall grid), one column per class.

    ``y`` and ``scores`` are (N, classes); masked labels (NaN) are left out; a
    class without both labels gets an empty column.
    """
    roc, pr = {"fpr": GRID}, {"recall": GRID}
    for k, name in enumerate(CLASSES):
        keep = ~np.isnan(y[:, k])
        yk = y[keep, k]
        if 0 < yk.sum() < len(yk):
            roc[name] = roc_points(yk, scores[keep, k], GRID)
            pr[name] = pr_points(yk, scores[keep, k], GRID)
        else:
            roc[name] = pr[name] = np.full(len(GRID), np.nan)
    return pd.DataFrame(roc).round(4), pd.DataFrame(pr).round(4)


def save_png(figure, path: Path) -> None:
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=120, bbox_inches="tight")


def label_efficiency_png(
    table: pd.DataFrame, inits: list[str], path: Path, title: str, protocols: dict[int, str] | None = None
) -> None:
    """The headline figure: macro AUROC against label percent, one line per init, with 95% intervals.

    ``protocols`` (label percent -> fine-tuning protocol) labels each percent's tick.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for init in inits:
        low, high = table[init] - table[f"{init}_low"], table[f"{init}_high"] - table[init]
        axis.errorbar(table["pct"], table[init], yerr=[low, high], marker="o", capsize=3, label=init)
    axis.set_xscale("log")
    protocols = protocols or {}
    axis.set_xticks(table["pct"], [f"{p}%\n{protocols[p]}" if p in protocols else f"{p}%" for p in table["pct"]])
    axis.set_xlabel("labelled training images (fine-tuning protocol)" if protocols else "labelled training images")
    axis.set_ylabel("test macro AUROC (95% CI)")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend()
    save_png(figure, path)
    plt.close(figure)


def per_class_png(per_class: pd.DataFrame, inits: list[str], percents: list[int], path: Path) -> None:
    """Per-class test AUROC, grouped by init, one panel per label percent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(percents), figsize=(4 * len(percents), 6), sharey=True)
    axes = np.atleast_1d(axes)
    positions = np.arange(len(CLASSES))
    height = 0.8 / len(inits)
    for axis, pct in zip(axes, percents):
        for i, init in enumerate(inits):
            part = per_class[(per_class["init"] == init) & (per_class["pct"] == pct)].set_index("class")
            values = part.reindex(list(CLASSES))["auroc"].to_numpy(dtype=float)
            axis.barh(positions + i * height, values, height=height, label=init)
        axis.axvline(0.5, color="gray", lw=0.8)
        axis.set_xlim(0.3, 1.0)
        axis.set_title(f"{pct}% labels", fontsize=9)
        axis.set_xlabel("test AUROC")
    axes[0].set_yticks(positions + 0.4 - height / 2, list(CLASSES), fontsize=8)
    axes[0].invert_yaxis()
    axes[-1].legend(fontsize=8)
    save_png(figure, path)
    plt.close(figure)


def write_curves(folder: Path, cell: str, y: np.ndarray, scores: np.ndarray) -> None:
    roc, pr = curves(y, scores)
    write_csv(folder / "roc" / f"{cell}.csv", roc)
    write_csv(folder / "pr" / f"{cell}.csv", pr)


def grid_figure(path: Path, rows: list[dict], inits: list[str], title: str) -> None:
    """Rows of (X-ray, one Grad-CAM per init) for the same images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    figure, axes = plt.subplots(
        len(rows), len(inits) + 1, figsize=(1.7 * (len(inits) + 1), 1.9 * len(rows)), squeeze=False
    )
    for r, row in enumerate(rows):
        side = row["image"].shape[0]
        for c in range(len(inits) + 1):
            axis = axes[r, c]
            axis.imshow(row["image"], cmap="gray", vmin=0, vmax=255, interpolation="bicubic")
            if c:
                cam = row["cams"][inits[c - 1]]
                peak = cam.max()
                axis.imshow(
                    cam / peak if peak > 0 else cam,
                    cmap="jet",
                    alpha=0.45,
                    vmin=0,
                    vmax=1,
                    interpolation="bilinear",
                    extent=(-0.5, side - 0.5, side - 0.5, -0.5),
                )
                axis.set_title(f"{inits[c - 1]} p={row['probs'][inits[c - 1]]:.2f}", fontsize=7)
            else:
                axis.set_title(row["label"], fontsize=7)
            for x0, y0, x1, y1 in row["boxes"]:
                axis.add_patch(
                    Rectangle(
                        (x0 * side - 0.5, y0 * side - 0.5),
                        (x1 - x0) * side,
                        (y1 - y0) * side,
                        fill=False,
                        edgecolor="lime",
                        linewidth=0.8,
                    )
                )
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(f"{title} of each init's classifier (green: ground-truth region)", fontsize=9)
    figure.tight_layout()
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="jpg", dpi=90, pil_kwargs={"quality": 88})
    plt.close(figure)


def evaluation_plots(
    folder: Path,
    summary: dict,
    per_class: pd.DataFrame,
    predictions: dict[str, pd.DataFrame],
    test: pd.DataFrame,
    inits: list[str],
    percents: list[int],
    caption: str,
    protocols: dict[int, set[str]],
) -> None:
    """The evaluate stage's plots folder: the two figures, and under ``curves/`` what ``dvc plots`` draws
    (label efficiency on test and on val, ROC and PR per cell from its seeds' mean test scores)."""
    efficiency = label_efficiency(summary, inits, percents)
    write_csv(folder / "curves" / "label_efficiency.csv", efficiency.round(5))
    write_csv(
        folder / "curves" / "label_efficiency_val.csv", label_efficiency(summary, inits, percents, "val").round(5)
    )
    y_test = test[list(CLASSES)].to_numpy(dtype=float)
    for cell, frame in predictions.items():
        part = frame[frame["split"] == "test"]
        mean_scores = part.groupby("row")[SCORE_COLUMNS].mean().loc[test["row"].to_numpy()].to_numpy()
        write_curves(folder / "curves", cell, y_test, mean_scores)
    label_efficiency_png(
        efficiency,
        inits,
        folder / "label_efficiency.png",
        caption,
        {pct: "/".join(sorted(p)) for pct, p in protocols.items()},
    )
    per_class_png(per_class, inits, percents, folder / "auroc_per_class.png")
