"""The study's results as one self-contained HTML page, ``results/report.html``.

Everything the page shows is inside the file: the CSS in a ``<style>`` block,
the figures as ``data:`` URIs (SVG drawn here with matplotlib, the Grad-CAM
grid as the gradcam stage's JPEG), no script and no address outside the page,
so it opens offline and can be mailed. The page is a function of the report
stage's inputs alone (no clock, host name or git revision; matplotlib's SVG
ids are salted and its date left out), so rerunning the stage writes the same
bytes, as every stage must.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from cxrssl.errors import DataError
from cxrssl.io import atomic_file

#: The baseline every gain is measured from (as in :mod:`cxrssl.report`).
BASELINE = "random"

#: Colours of the inits other than the baseline, in the order params.yaml lists them; the baseline is grey, dashed.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
BASELINE_COLOUR = "#555555"

#: How the page names the gradcam stage's map methods.
METHOD_NAMES = {"hirescam": "HiResCAM", "gradcam": "Grad-CAM"}

#: Metric keys whose names say they hold a machine or a duration; shown when a stage records one.
RUN_FACTS = re.compile(r"(^|_)(seconds|elapsed|duration|wall|host|hostname|machine|device|gpu|cpu)(_|$)|_s$")

#: Metric keys that hold a hash of the data (preprocess or split may record one).
DATA_HASH = re.compile(r"(^|[._])(hash|md5|sha1|sha256|digest)([._]|$)")

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2328;margin:0;
background:#fff}
main{max-width:1240px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:34px 0 8px;border-bottom:1px solid #d0d7de;
padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
p,li{max-width:980px}.lead{color:#57606a;margin-top:0}
nav{font-size:13px;margin:10px 0 18px}nav a{margin-right:14px;color:#0969da;text-decoration:none}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f6f8fa;font-weight:600;text-align:center}td.l,th.l{text-align:left}
td small,th small{display:block;color:#57606a;font-size:11px;font-weight:400}
.best{font-weight:700}.up{color:#1a7f37}.down{color:#cf222e}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
figure{margin:10px 0 18px}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:12.5px;color:#57606a;max-width:980px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.note{background:#f6f8fa;border-left:3px solid #d0d7de;padding:6px 10px;font-size:13px}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f6f8fa;padding:0 3px}
@media print{details{display:block}nav{display:none}}
"""


@dataclass
class ReportInputs:
    """What the page is made of: the stages' outputs as the report stage read them, and its parameters."""

    evaluation: dict  # evaluate.json
    top: dict  # the headline (cxrssl.report.headline)
    per_class: list[dict]  # evaluate_per_class.csv rows
    curves: Path  # the evaluate stage's curves/ folder (roc/<cell>.csv, pr/<cell>.csv)
    gradcam: dict  # gradcam.json
    grid_jpeg: bytes  # gradcam_grid.jpg
    stages: dict  # each stage's metrics, as results/stages.json
    cross: dict  # evaluate_cross_dataset.json
    methods: list[str]
    inits: list[str]
    percents: list[int]
    settings: dict = field(default_factory=dict)  # the other declared parameters the page names, by dotted key


# -- numbers and cells ------------------------------------------------------------------------------------------


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _interval(low, high, digits: int = 3) -> str:
    if low is None or high is None:
        return ""
    return f"<small>{_num(low, digits)}–{_num(high, digits)}</small>"


def _signed(value) -> str:
    if value is None:
        return "—"
    tone = "up" if value > 0 else "down" if value < 0 else ""
    return f'<span class="{tone}">{value:+.3f}</span>'


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def colours(inits: list[str]) -> dict[str, str]:
    """One colour per init, the same in every figure and table."""
    others = [i for i in inits if i != BASELINE]
    out = {init: PALETTE[k % len(PALETTE)] for k, init in enumerate(others)}
    if BASELINE in inits:
        out[BASELINE] = BASELINE_COLOUR
    return out


def _swatch(init: str, palette: dict[str, str]) -> str:
    colour = palette.get(init, "#ffffff")
    return f'<span class="sw" style="background:{colour}"></span>{_e(init)}'


def _float(text: str):
    """A CSV cell as a float; an empty cell (a metric left out) as None."""
    if text in ("", "nan", "NaN", None):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_per_class(path: Path) -> list[dict]:
    """evaluate_per_class.csv as a list of rows (numbers as floats, empty cells as None)."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the evaluate stage first") from None
    for key in ("init", "pct", "class", "auroc"):
        if rows and key not in rows[0]:
            raise DataError(f"{path}: no column {key!r}; rerun the evaluate stage")
    text = {"init", "class", "protocol", "note"}
    return [{k: (v if k in text else _float(v)) for k, v in row.items()} for row in rows]


def read_curve(path: Path) -> tuple[list[float], dict[str, list]]:
    """A curves CSV: its grid (first column) and one list per class (None where the class has no curve)."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the evaluate stage first") from None
    if len(rows) < 2:
        raise DataError(f"{path}: no rows; rerun the evaluate stage")
    header, body = rows[0], rows[1:]
    grid = [_float(r[0]) for r in body]
    return grid, {name: [_float(r[k]) for r in body] for k, name in enumerate(header) if k}


# -- figures ------------------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return matplotlib, plt


def svg_uri(figure) -> str:
    """The figure as an SVG data URI, the same bytes on every run (salted ids, no date, no creator)."""
    matplotlib, plt = _pyplot()
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "cxrssl-report", "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_uri(figure, dpi: int = 110, palette_size: int = 128) -> str:
    """The figure as a PNG data URI, its colours reduced to a palette: dense line plots are a third the size
    of their SVG, and a palette PNG a third of a full-colour one. No software tag, so the bytes do not vary."""
    from PIL import Image

    _, plt = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    buffer.seek(0)
    with Image.open(buffer) as image:
        reduced = image.convert("RGB").quantize(
            colors=palette_size, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    out = io.BytesIO()
    reduced.save(out, format="png", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _style(init: str, palette: dict[str, str]) -> dict:
    return {"color": palette[init], "linestyle": "--" if init == BASELINE else "-"}


def efficiency_figure(evaluation: dict, inits: list[str], percents: list[int], confidence_label: str):
    """Macro AUROC against label percent (log axis), one line per init with its interval; val and test panels."""
    _, plt = _pyplot()
    palette = colours(inits)
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.9), sharey=True)
    span = math.log10(max(percents) / min(percents)) or 1.0
    panels = (("val_auroc_macro", "Validation (used to choose)"), ("auroc_macro", "Test (reported)"))
    for axis, (key, title) in zip(axes, panels):
        for k, init in enumerate(inits):
            # a small sideways shift per init keeps overlapping intervals apart
            shift = 10 ** ((k - (len(inits) - 1) / 2) * 0.012 * span)
            xs, ys, lows, highs = [], [], [], []
            for pct in percents:
                cell = evaluation[init][str(pct)]
                if cell.get(key) is None:
                    continue
                value, low, high = cell[key], cell.get(f"{key}_low"), cell.get(f"{key}_high")
                xs.append(pct * shift)
                ys.append(value)
                lows.append(0.0 if low is None else value - low)
                highs.append(0.0 if high is None else high - value)
            axis.errorbar(
                xs, ys, yerr=[lows, highs], marker="o", markersize=4, capsize=3, lw=1.4, label=init,
                **_style(init, palette),
            )  # fmt: skip
        axis.set_xscale("log")
        axis.set_xticks(percents, [f"{p}%" for p in percents])
        axis.minorticks_off()
        axis.set_xlabel("labelled training images (percent of train, log scale)")
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(f"macro AUROC ({confidence_label})")
    axes[1].legend(fontsize=8, loc="lower right")
    figure.suptitle("Label efficiency: macro AUROC per init and label percent", fontsize=11)
    figure.tight_layout()
    return figure


def curves_figure(folder: Path, inits: list[str], pct: int, positives: dict[str, tuple]):
    """ROC (top block) and PR (bottom block) per class for every init at one label percent.

    ``positives``: class -> (test positives, test negatives), for the panel titles and the PR chance line.
    """
    _, plt = _pyplot()
    palette = colours(inits)
    roc = {init: read_curve(folder / "roc" / f"{init}-{pct}.csv") for init in inits}
    pr = {init: read_curve(folder / "pr" / f"{init}-{pct}.csv") for init in inits}
    classes = list(roc[inits[0]][1])
    ncols = min(7, len(classes))
    nrows = math.ceil(len(classes) / ncols)
    figure = plt.figure(figsize=(1.7 * ncols, 2 * 1.75 * nrows + 0.9), layout="constrained")
    blocks = figure.subfigures(2, 1, hspace=0.04)
    kinds = (
        (roc, "ROC: true against false positive rate", "FPR", "TPR"),
        (pr, "Precision against recall (dotted: the class's share of positives)", "recall", "precision"),
    )
    for block, (curves, heading, xlabel, ylabel) in zip(blocks, kinds):
        axes = block.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
        block.suptitle(heading, fontsize=9)
        for k, axis in enumerate(axes.flat):
            if k >= len(classes):
                axis.axis("off")
                continue
            name = classes[k]
            pos, neg = positives.get(name, (None, None))
            if curves is roc:
                axis.plot([0, 1], [0, 1], color="#aaaaaa", lw=0.7, linestyle=":")
            elif pos is not None and neg is not None and pos + neg > 0:
                axis.axhline(pos / (pos + neg), color="#aaaaaa", lw=0.7, linestyle=":")
            drawn = False
            for init in inits:
                grid, values = curves[init]
                points = [(x, y) for x, y in zip(grid, values.get(name) or []) if x is not None and y is not None]
                if points:
                    axis.plot([p[0] for p in points], [p[1] for p in points], lw=1.0, **_style(init, palette))
                    drawn = True
            if not drawn:
                axis.text(0.5, 0.5, "no curve", ha="center", va="center", fontsize=7, color="#888888")
            axis.set_title(name if pos is None else f"{name} ({int(pos)}+)", fontsize=7)
            axis.set_xlim(0, 1)
            axis.set_ylim(0, 1.02)
            axis.set_xticks([0, 0.5, 1], ["0", ".5", "1"])
            axis.set_yticks([0, 0.5, 1], ["0", ".5", "1"])
            axis.tick_params(labelsize=6.5, length=2, pad=1.5)
            if k % ncols == 0:
                axis.set_ylabel(ylabel, fontsize=7.5, labelpad=1)
            if k + ncols >= len(classes):  # the lowest panel of its column
                axis.set_xlabel(xlabel, fontsize=7.5, labelpad=1)
                axis.tick_params(labelbottom=True)
    handles = [plt.Line2D([], [], lw=1.5, label=init, **_style(init, palette)) for init in inits]
    figure.legend(handles=handles, loc="outside upper center", ncol=len(inits), fontsize=8.5, frameon=False)
    return figure


# -- sections ------------------------------------------------------------------------------------------------------


def _confidence(settings: dict) -> str:
    level = settings.get("evaluate.confidence")
    return f"{level * 100:g}% CI" if isinstance(level, int | float) else "CI"


def _interval_source(settings: dict) -> str:
    level, resamples = settings.get("evaluate.confidence"), settings.get("evaluate.bootstrap")
    head = f"{level * 100:g}% intervals" if isinstance(level, int | float) else "Intervals"
    tail = f", {resamples} resamples" if resamples is not None else ""
    return f"{head}: bootstrap over patients{tail}, per cell"


def headline_section(data: ReportInputs, palette: dict[str, str]) -> str:
    evaluation, top, inits, percents = data.evaluation, data.top, data.inits, data.percents
    gains = top.get("test_gain", {})
    out = ['<h2 id="headline">Headline: macro AUROC per init and label percent</h2>']
    summary = []
    for pct in percents:
        scored = [(top["val"][i][str(pct)], i) for i in inits if top["val"][i][str(pct)] is not None]
        if not scored:
            continue
        _, chosen = max(scored)
        cell = evaluation[chosen][str(pct)]
        line = (
            f"<b>{pct}%</b> labels: best on val is <b>{_e(chosen)}</b> "
            f"(val {_num(cell.get('val_auroc_macro'))}); on test {_num(cell.get('auroc_macro'))} "
            f"[{_num(cell.get('auroc_macro_low'))}, {_num(cell.get('auroc_macro_high'))}]"
        )
        gain = gains.get(chosen, {}).get(str(pct))
        if gain is not None:
            base = evaluation[BASELINE][str(pct)]
            line += (
                f", {_signed(gain)} over {BASELINE} ({_num(base.get('auroc_macro'))} "
                f"[{_num(base.get('auroc_macro_low'))}, {_num(base.get('auroc_macro_high'))}])"
            )
        summary.append(f"<li>{line}.</li>")
    if summary:
        out.append("<ul>" + "".join(summary) + "</ul>")
    head1 = ['<th class="l" rowspan="2">init</th>']
    head2 = []
    for pct in percents:
        protocols = sorted({str(evaluation[i][str(pct)].get("protocol", "")) for i in inits} - {""})
        label = f"{pct}% labels" + (f"<small>{_e('/'.join(protocols))} fine-tuning</small>" if protocols else "")
        head1.append(f'<th colspan="{3 if gains else 2}">{label}</th>')
        head2 += ["<th>val</th>", "<th>test</th>"] + ([f"<th>test − {BASELINE}</th>"] if gains else [])
    rows = []
    best = {}
    for pct in percents:
        for split in ("val", "test"):
            values = [top[split][i][str(pct)] for i in inits if top[split][i][str(pct)] is not None]
            best[split, pct] = max(values) if values else None
    for init in inits:
        cells = [f'<td class="l">{_swatch(init, palette)}</td>']
        for pct in percents:
            cell = evaluation[init][str(pct)]
            for split, key in (("val", "val_auroc_macro"), ("test", "auroc_macro")):
                value = cell.get(key)
                mark = ' class="best"' if value is not None and value == best[split, pct] else ""
                spread = f"<small>sd {_num(cell[f'{key}_sd'])}</small>" if cell.get(f"{key}_sd") is not None else ""
                cells.append(
                    f"<td{mark}>{_num(value)}{_interval(cell.get(f'{key}_low'), cell.get(f'{key}_high'))}{spread}</td>"
                )
            if gains:
                cells.append(f"<td>{_signed(gains[init][str(pct)]) if init in gains else ''}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    out.append(
        '<table id="headline-table"><thead><tr>'
        + "".join(head1)
        + "</tr><tr>"
        + "".join(head2)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    seeds = sorted({evaluation[i][str(p)].get("seeds", 1) for i in inits for p in percents})
    seed_note = (
        f" Each figure is the mean over {'/'.join(map(str, seeds))} fine-tuning seeds (sd: their spread)."
        if seeds != [1]
        else ""
    )
    out.append(
        f'<p class="note">Bold: the best init of the column. {_e(_interval_source(data.settings))} '
        "(the small numbers under each figure). Choose on val, report test. The gain over "
        f"{BASELINE} is the difference of the two test figures; it has no interval of its own here, and two "
        f"overlapping intervals do not by themselves show there is no difference.{seed_note}</p>"
    )
    return "\n".join(out)


def efficiency_section(data: ReportInputs) -> str:
    figure = efficiency_figure(data.evaluation, data.inits, data.percents, _confidence(data.settings))
    return (
        '<h2 id="efficiency">Label-efficiency curves</h2>\n'
        f'<figure><img alt="macro AUROC against label percent per init, val and test" src="{svg_uri(figure)}">'
        f"<figcaption>Macro AUROC over the classes against the share of labelled training images, one line per "
        f"init (dashed: {BASELINE}), with {_e(_interval_source(data.settings).lower())}; the points of each "
        "percent are shifted sideways a little so the intervals do not hide each other.</figcaption></figure>"
    )


def per_class_section(data: ReportInputs, palette: dict[str, str]) -> str:
    inits, percents = data.inits, data.percents
    rows = {(r["init"], int(r["pct"]), r["class"]): r for r in data.per_class if r.get("pct") is not None}
    out = [
        '<h2 id="per-class">Per-class AUROC</h2>',
        f"<p>Val and test AUROC per class, with {_e(_interval_source(data.settings).lower())}. "
        "Bold: the best init of the row on each split. +/−: the test images positive and negative for the "
        "class.</p>",
    ]
    for pct in percents:
        classes = [r["class"] for r in data.per_class if r.get("pct") == pct and r["init"] == inits[0]]
        if not classes:
            continue
        head1 = ['<th class="l" rowspan="2">class</th><th rowspan="2">test +/−</th>']
        head1 += [f'<th colspan="2">{_swatch(i, palette)}</th>' for i in inits]
        head2 = ["<th>val</th><th>test</th>" for _ in inits]
        body, notes = [], []
        for name in classes:
            first = rows[inits[0], pct, name]
            counts = f"{_num(first.get('test_positive'), 0)}/{_num(first.get('test_negative'), 0)}"
            cells = [f'<td class="l">{_e(name)}</td><td>{counts}</td>']
            best = {}
            for split in ("val_auroc", "auroc"):
                values = [rows[i, pct, name].get(split) for i in inits if (i, pct, name) in rows]
                values = [v for v in values if v is not None]
                best[split] = max(values) if values else None
            for init in inits:
                row = rows.get((init, pct, name), {})
                for split in ("val_auroc", "auroc"):
                    value = row.get(split)
                    mark = ' class="best"' if value is not None and value == best[split] else ""
                    cells.append(
                        f"<td{mark}>{_num(value)}{_interval(row.get(f'{split}_low'), row.get(f'{split}_high'))}</td>"
                    )
                if row.get("note"):
                    notes.append(f"{_e(init)}, {_e(name)}: {_e(row['note'])}")
            body.append("<tr>" + "".join(cells) + "</tr>")
        out.append(
            f"<details open><summary>{pct}% labels</summary>"
            f'<table class="per-class"><thead><tr>{"".join(head1)}</tr><tr>{"".join(head2)}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
            + (f"<ul>{''.join(f'<li>{n_}</li>' for n_ in notes)}</ul>" if notes else "")
            + "</details>"
        )
    return "\n".join(out)


def curves_section(data: ReportInputs) -> str:
    out = [
        '<h2 id="curves">ROC and precision-recall curves</h2>',
        "<p>Test curves per class, one colour per init (the same as above), one figure per label percent; "
        "dotted: chance (the diagonal; for PR, the class's share of positive test images). "
        "The first is open; the others unfold.</p>",
    ]
    for n, pct in enumerate(data.percents):
        counts = {}
        for row in data.per_class:
            if row.get("pct") == pct and row["init"] == data.inits[0]:
                counts[row["class"]] = (row.get("test_positive"), row.get("test_negative"))
        figure = curves_figure(data.curves, data.inits, pct, counts)
        opened = " open" if n == 0 else ""
        out.append(
            f"<details{opened}><summary>{pct}% labels: test curves of the classifiers fine-tuned on {pct}% of "
            f'the labels</summary><figure><img alt="ROC and PR curves per class at {pct}% labels" '
            f'src="{png_uri(figure)}"></figure></details>'
        )
    return "\n".join(out)


def gradcam_section(data: ReportInputs, palette: dict[str, str]) -> str:
    pct, method = data.settings.get("gradcam.pct"), data.settings.get("gradcam.method")
    which = f"{_e(METHOD_NAMES.get(method, method))} maps" if method else "Class activation maps"
    where = f" of the classifiers fine-tuned on {pct}% of the labels" if pct is not None else ""
    uri = "data:image/jpeg;base64," + base64.b64encode(data.grid_jpeg).decode("ascii")
    out = [
        '<h2 id="gradcam">Localisation (Grad-CAM)</h2>',
        f'<figure><img alt="Grad-CAM grid: one image per class against the inits" src="{uri}">'
        f"<figcaption>{which}{where}: one positive test image per class (rows) against each init (columns); "
        "green boxes: the finding's region.</figcaption></figure>",
    ]
    columns = [k for k in data.gradcam if isinstance(data.gradcam[k], dict) and data.gradcam[k]]
    if not columns:
        out.append("<p>No localisation scores: the dataset draws no regions.</p>")
        return "\n".join(out)
    classes = list(data.gradcam[columns[0]])
    head1 = ['<th class="l" rowspan="2">class</th><th rowspan="2">n</th>']
    head1 += [f'<th colspan="2">{_swatch(c, palette) if c in palette else _e(c)}</th>' for c in columns]
    head2 = ["<th>pointing</th><th>energy</th>" for _ in columns]
    body = []
    for name in classes + ["mean"]:
        if name == "mean":
            cells = ['<td class="l"><i>mean over classes</i></td><td></td>']
        else:
            count = data.gradcam[columns[0]][name].get("n")
            hits = [data.gradcam[c].get(name, {}).get("pointing_game") for c in columns if c in data.inits]
            best = max((h for h in hits if h is not None), default=None)
            cells = [f'<td class="l">{_e(name)}</td><td>{_num(count, 0)}</td>']
        for column in columns:
            scores = data.gradcam[column]
            if name == "mean":
                for key in ("pointing_game", "energy_inside"):
                    values = [s[key] for s in scores.values() if s.get(key) is not None]
                    cells.append(f"<td>{_num(sum(values) / len(values)) if values else '—'}</td>")
                continue
            s = scores.get(name, {})
            hit = s.get("pointing_game")
            mark = ' class="best"' if hit is not None and hit == best else ""
            cells.append(
                f"<td{mark}>{_num(hit)}{_interval(s.get('pointing_game_low'), s.get('pointing_game_high'))}</td>"
            )
            cells.append(f"<td>{_num(s.get('energy_inside'))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    out.append(
        f'<table id="gradcam-table"><thead><tr>{"".join(head1)}</tr><tr>{"".join(head2)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        '<p class="note">Bold: the best init of the row. Pointing game: the share of the n positive test images '
        "whose map peaks in the finding's region (within the stage's tolerance), with its Wilson 95% interval; "
        "energy: the share of the map's mass inside the region. <code>center_prior</code> scores the same fixed "
        "map, a Gaussian at the image centre, on every image: a classifier's maps localise only where they beat "
        "it.</p>"
    )
    return "\n".join(out)


def cross_section(data: ReportInputs, palette: dict[str, str]) -> str:
    dataset = data.cross.get("dataset")
    if not dataset:
        return ""
    head = "".join(f"<th>{p}% labels</th>" for p in data.percents)
    rows = []
    for init in data.inits:
        cells = [f'<td class="l">{_swatch(init, palette)}</td>']
        for pct in data.percents:
            cell = data.cross.get(init, {}).get(str(pct), {})
            value = cell.get("auroc_macro")
            cells.append(
                f"<td>{_num(value)}{_interval(cell.get('auroc_macro_low'), cell.get('auroc_macro_high'))}</td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    about = _e(json.dumps(dataset, sort_keys=True))
    return (
        '<h2 id="cross">Another dataset</h2>\n'
        f"<p>Every classifier scored on another dataset's test images: <code>{about}</code>. Test macro AUROC over "
        f"the classes both datasets label, with {_e(_interval_source(data.settings).lower())}.</p>"
        f'<table><thead><tr><th class="l">init</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _leaves(value, prefix: str = ""):
    """(dotted key, value) of every leaf of a nested mapping."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, str):
        return _e(value)
    return _e(json.dumps(value))


def _records_table(records: dict[str, dict], first: str, named: tuple[str, ...]) -> str:
    """One row per record; columns: the scalar keys in the order they first appear (a seeds map is flattened),
    less ``named``, the keys the row's name already says."""
    flat = {}
    for name, record in records.items():
        row = {k: v for k, v in record.items() if not isinstance(v, dict) and k not in named}
        seeds = record.get("seeds")
        if isinstance(seeds, dict) and seeds:
            for key in dict.fromkeys(k for s in seeds.values() for k in s):
                if key not in row:
                    row[key] = ", ".join(_value(s.get(key)) for s in seeds.values())
        flat[name] = row
    columns = list(dict.fromkeys(k for row in flat.values() for k in row))
    head = f'<th class="l">{_e(first)}</th>' + "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        f'<tr><td class="l">{_e(name)}</td>'
        + "".join(f"<td>{_value(row[c]) if c in row else ''}</td>" for c in columns)
        + "</tr>"
        for name, row in flat.items()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def identity_section(data: ReportInputs) -> str:
    params = {"methods": data.methods, "inits": data.inits, "label_percents": data.percents, **data.settings}
    rows = "".join(
        f'<tr><td class="l"><code>{_e(k)}</code></td><td class="l">{_value(v)}</td></tr>' for k, v in params.items()
    )
    preprocess, split = data.stages.get("preprocess", {}), data.stages.get("split", {})
    source = data.settings.get("data.source")
    data_rows = []
    if source is not None:
        data_rows.append(("source (<code>data.source</code>)", _e(source)))
    data_rows += [
        (f"preprocess: {_e(k)}", _value(v))
        for k, v in preprocess.items()
        if not isinstance(v, dict) and not DATA_HASH.search(k)  # a hash gets its own row below
    ]
    for part in ("train", "val", "test"):
        counts = split.get(part, {})
        if counts:
            data_rows.append(
                (
                    f"split: {part}",
                    f"{_value(counts.get('n_images'))} images, {_value(counts.get('n_studies'))} studies, "
                    f"{_value(counts.get('n_patients'))} patients",
                )
            )
    for key in ("uncertainty", "frontal_only"):
        if key in split:
            data_rows.append((f"split: {_e(key)}", _value(split[key])))
    overlap = split.get("patient_overlap")
    if isinstance(overlap, dict):
        data_rows.append(
            (
                "split: patients in both train and test tables",
                f"{_value(overlap.get('patients'))} ({_value(overlap.get('action'))})",
            )
        )
    for pct, fraction in split.get("label_fractions", {}).items():
        missing = fraction.get("classes_without_positive") or []
        data_rows.append(
            (
                f"split: {_e(pct)}% labels",
                f"{_value(fraction.get('n_images'))} images, {_value(fraction.get('n_patients'))} patients"
                + (f"; no positive {_e(', '.join(missing))}" if missing else ""),
            )
        )
    hashes = [(k, v) for k, v in _leaves({"preprocess": preprocess, "split": split}) if DATA_HASH.search(k)]
    data_rows += [(f"{_e(k)}", _value(v)) for k, v in hashes]
    data_table = "".join(f'<tr><td class="l">{k}</td><td class="l">{v}</td></tr>' for k, v in data_rows)
    hash_note = (
        ""
        if hashes
        else "<p>No stage records a hash of the data in its metrics. The data this run saw is identified by the "
        "md5 of <code>data/preprocessed</code> (and of the source it was made from) in <code>dvc.lock</code> at the "
        "commit that holds this run.</p>"
    )
    facts = [(k, v) for k, v in _leaves(data.stages) if RUN_FACTS.search(k.rsplit(".", 1)[-1])]
    if facts:
        fact_html = (
            "<table><tbody>"
            + "".join(
                f'<tr><td class="l"><code>{_e(k)}</code></td><td class="l">{_value(v)}</td></tr>' for k, v in facts
            )
            + "</tbody></table>"
        )
    else:
        fact_html = (
            "<p>No stage records its machine or its running time in its outputs: they would change the bytes of "
            "every rerun, and DVC compares outputs by their hash. The stages that take time print it to "
            "their log (<code>dvc repro</code>'s output).</p>"
        )
    pretrain = data.stages.get("pretrain", {})
    finetune = data.stages.get("finetune", {})
    return "\n".join(
        [
            '<h2 id="identity">This run</h2>',
            '<p class="note">The code revision is the git commit that holds this run\'s <code>dvc.lock</code> '
            "(and this page): the page cannot name it, since the report stage writes it before that commit exists, "
            "and it carries no clock or host name either, so that rerunning the stage on the same inputs writes the "
            "same bytes.</p>",
            "<h3>Parameters the report depends on</h3>",
            f"<table><tbody>{rows}</tbody></table>",
            "<h3>Data</h3>",
            f"<table><tbody>{data_table}</tbody></table>",
            hash_note,
            "<h3>Machine and time</h3>",
            fact_html,
            "<h3>Pretraining</h3>" if pretrain else "",
            _records_table(pretrain, "method", ("method",)) if pretrain else "",
            (
                f"<details><summary>Fine-tuning runs ({len(finetune)})</summary>"
                f"{_records_table(finetune, 'cell', ('init', 'pct'))}</details>"
            )
            if finetune
            else "",
        ]
    )


def render(data: ReportInputs) -> str:
    """The whole page, as text."""
    palette = colours(data.inits)
    sections = [
        headline_section(data, palette),
        efficiency_section(data),
        per_class_section(data, palette),
        curves_section(data),
        gradcam_section(data, palette),
        cross_section(data, palette),
        identity_section(data),
    ]
    links = [
        ("headline", "Headline"),
        ("efficiency", "Label efficiency"),
        ("per-class", "Per class"),
        ("curves", "ROC and PR"),
        ("gradcam", "Localisation"),
        *([("cross", "Another dataset")] if data.cross.get("dataset") else []),
        ("identity", "This run"),
    ]
    nav = "".join(f'<a href="#{anchor}">{text}</a>' for anchor, text in links)
    inits = ", ".join(data.inits)
    percents = ", ".join(f"{p}%" for p in data.percents)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>cxrssl: self-supervised pretraining for chest X-ray classification</title>"
        f"<style>{STYLE}</style></head><body><main>\n"
        "<h1>Self-supervised pretraining for chest X-ray classification</h1>\n"
        f'<p class="lead">Inits {_e(inits)}, fine-tuned on {_e(percents)} of the labelled training images; '
        "macro AUROC over the classes on val (model choice) and test (report). Written by the pipeline's "
        "report stage from its inputs alone; the figures and tables of <code>results/</code> in one "
        "self-contained file.</p>\n"
        f"<nav>{nav}</nav>\n" + "\n".join(s for s in sections if s) + "\n</main></body></html>\n"
    )


def write_report(path: Path, page: str) -> None:
    """Write the page, atomically, as UTF-8 whatever the locale."""
    with atomic_file(path, "wb") as handle:
        handle.write(page.encode("utf-8"))
