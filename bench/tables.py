"""The tables in README.md and docs/, written from the recorded results so that no number exists twice.

    python -m bench.tables            # rewrite every generated table in place
    python -m bench.tables --check    # exit 1 if a table differs from what the results say (tests run this)

A generated table sits between ``<!-- table:NAME -->`` and ``<!-- /table -->``
in a Markdown file; NAME is one of :data:`TABLES`. Sources: ``results/``
(the committed run, written by the report stage), ``bench/defaults.json``
and ``bench/seeds.json`` (``python -m bench.variants``) and
``bench/results.json`` (the benchmarks).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAMES = {"random": "random", "moco": "MoCo v2", "simclr": "SimCLR", "byol": "BYOL", "swav": "SwAV"}
FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _load(path: str) -> dict:
    file = REPO / path
    return json.loads(file.read_text()) if file.exists() else {}


def _ci(cell: dict, key: str) -> str:
    if cell.get(key) is None:
        return "n/a"
    return f"{cell[key]:.3f} [{cell[f'{key}_low']:.3f}, {cell[f'{key}_high']:.3f}]"


def _percents(evaluation: dict) -> list[str]:
    return sorted(next(iter(evaluation.values())), key=int)


def results() -> str:
    """Val and test macro AUROC of every cell of the committed run, with patient-bootstrap intervals."""
    evaluation = _load("results/evaluate.json")
    percents = _percents(evaluation)
    head = "| init | " + " | ".join(f"{p}% ({evaluation['random'][p]['protocol']}): val / test" for p in percents)
    lines = [head + " |", "|---|" + "---|" * len(percents)]
    for init, cells in evaluation.items():
        row = [f"{_ci(cells[p], 'val_auroc_macro')} / {_ci(cells[p], 'auroc_macro')}" for p in percents]
        lines.append(f"| {NAMES.get(init, init)} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _by_seed() -> dict[str, dict]:
    """{seed name: evaluate cells}: seed 0 is the committed run, the others bench/seeds.json's."""
    runs = {"seed-0": _load("results/evaluate.json")}
    runs.update({name: run["cells"] for name, run in sorted(_load("bench/seeds.json").items())})
    return runs


def seeds() -> str:
    """Mean ± sd over pretraining-and-fine-tuning seeds, the gain over random, and whether it clears both noises."""
    runs = _by_seed()
    if len(runs) < 2:
        return "(no seed runs recorded yet: python -m bench.variants seeds)"
    base = runs["seed-0"]
    percents = _percents(base)
    lines = [
        f"Seeds: {', '.join(s.removeprefix('seed-') for s in runs)} (pretraining and fine-tuning seed "
        f"together). Each cell: test macro AUROC mean ± sd over seeds; gain: the mean of the per-seed "
        f"differences to random ± their sd; ± CI: half the width of the seed-0 bootstrap interval.",
        "",
        "| init | " + " | ".join(f"{p}%: AUROC | gain | ± CI | gain > sd and > CI?" for p in percents) + " |",
        "|---|" + "---|---|---|---|" * len(percents),
    ]
    for init in base:
        row = []
        for p in percents:
            values = [run[init][p]["auroc_macro"] for run in runs.values()]
            gains = [run[init][p]["auroc_macro"] - run["random"][p]["auroc_macro"] for run in runs.values()]
            half = (base[init][p]["auroc_macro_high"] - base[init][p]["auroc_macro_low"]) / 2
            mean, sd = statistics.mean(values), statistics.stdev(values)
            gain, gain_sd = statistics.mean(gains), statistics.stdev(gains)
            holds = "yes" if init != "random" and gain > gain_sd and gain > half else ("" if init == "random" else "no")
            row += [
                f"{mean:.3f} ± {sd:.3f}",
                "" if init == "random" else f"{gain:+.3f} ± {gain_sd:.3f}",
                f"{half:.3f}",
                holds,
            ]
        lines.append(f"| {NAMES.get(init, init)} | " + " | ".join(row) + " |")
    return "\n".join(lines)


#: The decisions behind the defaults: (question, the starting value, {alternative value: [recorded variants]},
#: the inits whose cells decide, whether val chooses). A method's own parameter is decided on its cells; a shared
#: one on every method's (SimCLR's variant and the one for the other three); budget-bound ones and the phantoms'
#: contrast are shown, not chosen.
DECISIONS = [
    (
        "phantom contrast: a property of the benchmark, a sensitivity check",
        "3.0",
        {"1.0": ["contrast-1.0"], "2.0": ["contrast-2.0"]},
        ["simclr"],
        False,
    ),
    (
        "crop area from (pretrain.common.crop_scale_min; every method)",
        "0.5",
        {"0.2": ["crop-0.2", "crop-0.2-others"], "0.8": ["crop-0.8", "crop-0.8-others"]},
        ["moco", "simclr", "byol", "swav"],
        True,
    ),
    ("pretraining epochs: set by the time budget", "8", {"12": ["epochs-12"]}, ["simclr"], False),
    ("backbone: set by the time budget", "resnet10", {"resnet18": ["backbone-resnet18"]}, ["simclr"], False),
    ("MoCo key-encoder momentum", "0.995", {"0.99": ["moco-m-0.99"], "0.999": ["moco-m-0.999"]}, ["moco"], True),
    ("MoCo queue", "1024", {"4096": ["moco-queue-4096"]}, ["moco"], True),
    ("BYOL tau_base", "0.9", {"0.8": ["byol-tau-0.8"], "0.99": ["byol-tau-0.99"]}, ["byol"], True),
    ("SwAV small crops", "2", {"4": ["swav-local-4"]}, ["swav"], True),
    ("SwAV epsilon", "0.02", {"0.01": ["swav-eps-0.01"], "0.05": ["swav-eps-0.05"]}, ["swav"], True),
]
#: The fine-tuning protocol, chosen per label percent on the mean over every init: (variant, what it runs).
PROTOCOLS = [
    ("default", "linear at 1% and 10%, end to end at 100%"),
    ("protocol-linear", "linear everywhere"),
    ("protocol-full", "end to end everywhere"),
]


def _cells(record: dict, names: list[str]) -> dict | None:
    """The cells of the variants ``names``, merged (each adds its inits), or None if one is missing."""
    if any(name not in record for name in names):
        return None
    merged: dict = {}
    for name in names:
        merged.update(record[name]["cells"])
    return merged


def _mean(cells: dict, inits: list[str], pct: str) -> float:
    return statistics.mean(cells[i][pct]["val_auroc_macro"] for i in inits)


def _bold(text: str, chosen: bool) -> str:
    return f"**{text}**" if chosen else text


def defaults() -> str:
    """Val macro AUROC of each setting against its alternatives, averaged over the cells that decide."""
    record = _load("bench/defaults.json")
    if "default" not in record:
        return "(no variants recorded yet: python -m bench.variants defaults)"
    base = record["default"]["cells"]
    percents = _percents(base)
    lines = [
        "| question | value | cells | " + " | ".join(f"val {p}%" for p in percents) + " | mean |",
        "|---|---|---|" + "---|" * (len(percents) + 1),
    ]
    for question, start, alternatives, inits, chosen in DECISIONS:
        rows = [(start, base)]
        rows += [(value, cells) for value, names in alternatives.items() if (cells := _cells(record, names))]
        if len(rows) == 1:
            continue
        means = [statistics.mean(_mean(c, inits, p) for p in percents) for _, c in rows]
        best = max(range(len(rows)), key=lambda k: means[k])
        who = ", ".join(NAMES[i] for i in inits)
        for k, (value, cells) in enumerate(rows):
            lines.append(
                f"| {question if k == 0 else ''} | {_bold(value, chosen and k == best)} | {who if k == 0 else ''} | "
                + " | ".join(f"{_mean(cells, inits, p):.3f}" for p in percents)
                + f" | {_bold(f'{means[k]:.3f}', chosen and k == best)} |"
            )
    protocols = [(label, record[name]["cells"]) for name, label in PROTOCOLS if name in record]
    if len(protocols) > 1:
        every = list(base)
        best = {p: max(range(len(protocols)), key=lambda k: _mean(protocols[k][1], every, p)) for p in percents}
        for k, (label, cells) in enumerate(protocols):
            lines.append(
                f"| {'fine-tuning protocol, chosen per label percent' if k == 0 else ''} | {label} | "
                f"{'all five' if k == 0 else ''} | "
                + " | ".join(_bold(f"{_mean(cells, every, p):.3f}", best[p] == k) for p in percents)
                + " | |"
            )
    return "\n".join(lines)


def gradcam() -> str:
    """Pointing game per localised class and init, the best init's Wilson interval, and the centre prior."""
    scores = _load("results/gradcam.json")
    inits = [k for k in scores if k != "center_prior"]
    classes = list(scores["center_prior"])
    lines = [
        "| class (n) | " + " | ".join(NAMES.get(i, i) for i in inits) + " | centre prior |",
        "|---|" + "---|" * (len(inits) + 1),
    ]
    for name in classes:
        best = max(inits, key=lambda i: scores[i][name]["pointing_game"])
        cells = []
        for init in inits:
            c = scores[init][name]
            text = f"{c['pointing_game']:.2f}"
            cells.append(
                f"**{text}** [{c['pointing_game_low']:.2f}, {c['pointing_game_high']:.2f}]" if init == best else text
            )
        prior = scores["center_prior"][name]
        low, high = prior["pointing_game_low"], prior["pointing_game_high"]
        cells.append(f"{prior['pointing_game']:.2f} [{low:.2f}, {high:.2f}]")
        lines.append(f"| {name} ({prior['n']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reproducibility() -> str:
    """What changes when the machine changes (emulated): the store, the first pretraining losses, a probe."""
    record = _load("bench/results.json").get("reproducibility")
    if not record:
        return "(not measured yet: python -m bench.reproducibility)"
    lines = [
        "| what differs | store bytes | MoCo loss, 5 steps | SimCLR loss, 5 steps | linear probe val AUROC |",
        "|---|---|---|---|---|",
    ]
    for name, r in record.items():
        if name == "machine":
            continue
        loss = r["pretrain_loss_change"]
        lines.append(
            f"| {name} | {'identical' if r['store_identical'] else 'differ'} | {loss['moco']:+.2g} | "
            f"{loss['simclr']:+.2g} | {r['linear_val_auroc_change']:+.4f} |"
        )
    return "\n".join(lines)


def _machine(entry: dict) -> str:
    m = entry.get("machine", {})
    return f"{m.get('cpu_cores', '?')} cores, {m.get('date', '?')}"


def performance() -> str:
    """The benchmarks' headline figures, each with its command and when and where it ran."""
    r = _load("bench/results.json")
    rows = []

    def add(key: str, what: str, figure: Callable[[dict], str], command: str) -> None:
        if key in r:
            rows.append(f"| {what} | {figure(r[key])} | `{command}` | {_machine(r[key])} |")

    add(
        "pipeline",
        "the whole `dvc repro` from scratch (every stage run)",
        lambda e: f"{e['repro_minutes']} min; per stage: " + ", ".join(f"{k} {v} s" for k, v in e["stages_s"].items()),
        "python -m bench.pipeline",
    )
    add(
        "phantom_generation",
        "generate the phantom set",
        lambda e: f"{e['images']:,} images in {e['zip']['seconds']} s ({e['zip']['images_per_s']:.0f} images/s)",
        "python -m bench.phantom_generation",
    )
    add(
        "preprocess_throughput",
        "preprocess phantom JPEGs (320 × 384) → 64 / 224 px, 2 workers",
        lambda e: "{:.0f} / {:.0f} images/s".format(
            e["phantom_jpeg_320x384"]["64px"]["store_2_workers"], e["phantom_jpeg_320x384"]["224px"]["store_2_workers"]
        ),
        "python -m bench.preprocess_throughput",
    )
    add(
        "preprocess_throughput",
        "preprocess real NIH PNGs (256 px) → 64 / 224 px, 2 workers",
        lambda e: "{:.0f} / {:.0f} images/s".format(
            e["nih_png_256"]["64px"]["store_2_workers"], e["nih_png_256"]["224px"]["store_2_workers"]
        ),
        "python -m bench.preprocess_throughput",
    )
    add(
        "split_real_table",
        "read and split CheXpert's label table (223,414 rows)",
        lambda e: f"{e['read_and_validate_s']} s to read and check, {max(e['split_s'].values())} s to split",
        "python -m bench.split_real_table",
    )
    add(
        "archive_open",
        "open CheXpert's zip (224,316 members) in a worker",
        lambda e: f"{e['open_s']} s, {e['held_mib']} MiB held",
        "python -m bench.archive_open",
    )
    for backbone in ("resnet10", "resnet18"):
        add(
            f"pretrain_throughput_{backbone}",
            f"pretraining images/s, {backbone}, 64 px, batch 128 (ceiling ratio)",
            lambda e: ", ".join(
                f"{m} {v['ours_images_per_s']:.0f} ({v['cost_ratio']})" for m, v in e["methods"].items()
            ),
            f"python -m bench.pretrain_throughput --backbone {backbone}",
        )
    add(
        "view_throughput",
        "each method's views alone (share of a training step)",
        lambda e: ", ".join(
            f"{m} {v['images_per_s']:.0f}/s ({v['share_of_step']:.0%})" for m, v in e["methods"].items()
        ),
        "python -m bench.view_throughput",
    )
    add(
        "channels_last",
        "bare ResNet-10 step, NCHW → channels-last",
        lambda e: f"{e['median_views_per_s']['nchw']:.0f} → {e['median_views_per_s']['channels_last']:.0f} views/s "
        f"(×{e['speedup']})",
        "python -m bench.channels_last",
    )
    add(
        "dvc_noop",
        "`dvc repro` / `dvc status` with nothing to do",
        lambda e: f"{e['repro']['median_s']} / {e['status']['median_s']} s (median of {len(e['repro']['runs_s'])})",
        "python -m bench.dvc_noop",
    )
    add(
        "predict_throughput",
        "`cxrssl.predict`, files to CSV, 1024 px: PNG 8-bit / 16-bit / 8-bit with maps; JPEG; DICOM 16-bit "
        "uncompressed / RLE",
        lambda e: "{} / {} / {}; {}; {} / {} images/s".format(
            e["png_8bit_images_per_s"],
            e["png_16bit_images_per_s"],
            e["png_8bit_with_cam_images_per_s"],
            e["jpeg_images_per_s"],
            e["dicom_images_per_s"],
            e["dicom_rle_images_per_s"],
        ),
        "python -m bench.predict_throughput",
    )
    add(
        "two_jobs",
        "`finetune@random-10` alone / beside a busy loop / beside a second copy: default threads; 1 thread each",
        lambda e: "{} / {} / {} s; {} / {} / {} s".format(
            *(e["default"][a]["median_s"] for a in ("alone", "busy", "twin")),
            *(e["OMP_NUM_THREADS=1"][a]["median_s"] for a in ("alone", "busy", "twin")),
        ),
        "python -m bench.two_jobs",
    )
    add(
        "phantom_difficulty",
        "shallow baselines on the phantoms: brightness / 16 × 16 pixels (val macro AUROC)",
        lambda e: f"{e['macro']['brightness_auroc']} / {e['macro']['pixel_logreg_auroc']}",
        "python -m bench.phantom_difficulty",
    )
    add(
        "linear_probe",
        "logistic regression on frozen features at 1 / 10 / 100% (val macro AUROC)",
        lambda e: "; ".join(
            f"{i} " + " / ".join(f"{v:.3f}" for v in c.values()) for i, c in e["macro_auroc_val"].items()
        ),
        "python -m bench.linear_probe",
    )
    head = ["| what | figure | command | machine |", "|---|---|---|---|"]
    return "\n".join(head + rows)


def rehearsal() -> str:
    """Every stage at CheXpert's size (``python -m bench.rehearsal``): time, memory, disk, training rates."""
    r = _load("bench/results.json").get("rehearsal")
    if not r:
        return "(not yet run: `python -m bench.rehearsal`)"
    lines = [
        "| stage | wall | peak memory: all / private | disk written (DVC cache) | training rate |",
        "|---|---|---|---|---|",
    ]
    linear = r["overrides"]["params"].get("finetune.linear_pcts", [])
    for stage, s in r["stages"].items():
        rate = ""
        if stage.startswith("finetune@") and int(stage.rpartition("-")[2]) in linear:
            rate = f"linear head on cached features: {s['steps_per_s']:.0f} steps/s"
        elif "images_per_s" in s:
            rate = f"{s['images_per_s']:.0f} images/s, {s['steps_per_s']:.2f} steps/s (batch {s['batch']})"
            r50 = r.get("resnet50", {}).get(stage)
            if r50:
                rate += f"; ResNet-50: {r50['images_per_s']:.1f} images/s, {r50['steps_per_s']:.2f} steps/s"
                rate += f" (batch {r50['batch']})"
        wall = f"{s['wall_s'] / 60:.1f} min" if s["wall_s"] >= 120 else f"{s['wall_s']:.0f} s"
        private = f"{s['peak_private_gib']:.1f} GiB" if "peak_private_gib" in s else "not sampled"
        name = f"{stage} (rerun, its output already cached)" if s.get("forced") else stage
        disk = "—" if s.get("forced") else f"{s['disk_written_gib']:.1f} GiB ({s['cache_gib']:.1f})"
        lines.append(f"| {name} | {wall} | {s['peak_rss_gib']:.1f} GiB / {private} | {disk} | {rate} |")
    total = sum(s["wall_s"] for s in r["stages"].values()) / 60
    lines.append(f"| **every stage** | **{total:.1f} min** | | | |")
    return "\n".join(lines)


def bootstrap_scale() -> str:
    """The evaluate stage's bootstrap at scale, in blocks and at once (``python -m bench.bootstrap_scale``)."""
    r = _load("bench/results.json").get("bootstrap_scale")
    if not r:
        return "(not yet run: `python -m bench.bootstrap_scale`)"
    lines = ["| images per split | resamples scored | time | peak memory (numpy) |", "|---|---|---|---|"]
    for n, runs in r["images_per_split"].items():
        for name, run in runs.items():
            how = "all at once" if name == "one_block" else name.replace("_", " ")
            lines.append(f"| {int(n):,} | {how} | {run['seconds']} s | {run['peak_gib']} GiB |")
    return "\n".join(lines)


def time_to_result() -> str:
    """docs/gpu.md's recipe on 1 and 8 GPUs, derived (``python -m bench.time_to_result``)."""
    r = _load("bench/results.json").get("time_to_result")
    if not r:
        return "(not yet derived: `python -m bench.time_to_result`)"
    one, eight = r["hours"]["1_gpu"], r["hours"]["8_gpu"]
    lines = ["| stage | 1 GPU | 8 GPUs | from |", "|---|---|---|---|"]
    cost = r["measured"]["cost_in_backbone_passes_per_image"]
    for stage in one:
        if stage == "total":
            continue
        method = stage.partition("@")[2]
        if method in cost:
            source = f"{cost[method]} ResNet-50 passes per image (measured) × GPU rate (assumed)"
        elif stage.startswith("finetune"):
            source = (
                f"{cost['finetune']} passes per training image (measured), 1/3 per scored image (assumed) "
                "× GPU rate (assumed)"
            )
        else:
            source = "measured on 2 CPU cores"
        lines.append(f"| {stage} | {one[stage]:.2f} h | {eight[stage]:.2f} h | {source} |")
    lines.append(f"| **total** | **{one['total']} h** | **{eight['total']} h** | |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "performance": performance,
    "results": results,
    "seeds": seeds,
    "defaults": defaults,
    "gradcam": gradcam,
    "reproducibility": reproducibility,
    "rehearsal": rehearsal,
    "bootstrap_scale": bootstrap_scale,
    "time_to_result": time_to_result,
}
_BLOCK = re.compile(r"(<!-- table:(\w+) -->\n)(.*?)\n?<!-- /table -->", re.DOTALL)


def render(text: str) -> str:
    return _BLOCK.sub(lambda m: m.group(1) + TABLES[m.group(2)]() + "\n<!-- /table -->", text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that every table is up to date")
    args = parser.parse_args(argv)
    stale = []
    for file in FILES:
        text = file.read_text()
        new = render(text)
        if new != text:
            stale.append(file.relative_to(REPO))
            if not args.check:
                file.write_text(new)
    if args.check and stale:
        sys.exit(f"generated tables out of date in {', '.join(map(str, stale))}: run python -m bench.tables")
    print("tables " + ("up to date" if not stale else f"rewritten in {', '.join(map(str, stale))}"))


if __name__ == "__main__":
    main()
