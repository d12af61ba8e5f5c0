"""The report stage's HTML page: self-contained (nothing fetched), the same bytes on every run, and readable in a
browser with the network cut off. The stage's inputs are built here, small, so the tests need no DVC outputs."""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from cxrssl.data.schema import CLASSES
from cxrssl.report import gather
from stages.report import main as report_main
from tests.imports import REPO

INITS = ["random", "moco"]
PERCENTS = [10, 100]
METHODS = ["moco"]
SHOWN = list(CLASSES[1:4])  # three classes keep the figures small
SETTINGS = {
    "data.source": "phantoms",
    "evaluate.bootstrap": 20,
    "evaluate.confidence": 0.95,
    "gradcam.pct": 100,
    "gradcam.method": "hirescam",
}
MAX_BYTES = 4 * 2**20  # a page to mail: a few MB at most
CHROMIUM = Path("/usr/bin/chromium")
MAGENTA = (255, 0, 255)  # the Grad-CAM grid stand-in's colour, found nowhere else on the page


def _cell(test: float, val: float) -> dict:
    return {
        "auroc_macro": test,
        "auroc_macro_low": round(test - 0.02, 5),
        "auroc_macro_high": round(test + 0.02, 5),
        "val_auroc_macro": val,
        "val_auroc_macro_low": round(val - 0.03, 5),
        "val_auroc_macro_high": round(val + 0.03, 5),
        "seeds": 1,
        "protocol": "full",
    }


def write_inputs(root: Path) -> tuple[Path, Path]:
    """A small ``metrics/`` and ``plots/`` in the evaluate, gradcam, split and training stages' formats."""
    from PIL import Image

    metrics, plots = root / "metrics", root / "plots"
    for folder in (
        metrics / "pretrain",
        metrics / "finetune",
        plots / "evaluate/curves/roc",
        plots / "evaluate/curves/pr",
    ):
        folder.mkdir(parents=True)
    evaluation = {
        "random": {"10": _cell(0.7461, 0.7473), "100": _cell(0.8420, 0.8551)},
        "moco": {"10": _cell(0.7655, 0.7512), "100": _cell(0.8502, 0.8610)},
    }
    (metrics / "evaluate.json").write_text(json.dumps(evaluation))
    (metrics / "evaluate_cross_dataset.json").write_text(json.dumps({"dataset": None}))
    header = "init,pct,protocol,class,test_positive,test_negative,note,auroc,auroc_low,auroc_high,"
    header += "val_auroc,val_auroc_low,val_auroc_high"
    lines = [header]
    for i, init in enumerate(INITS):
        for pct in PERCENTS:
            for k, name in enumerate(SHOWN):
                a = 0.6 + 0.05 * k + 0.02 * i + pct / 1000
                lines.append(f"{init},{pct},full,{name},{20 + k},{80 - k},,{a:.4f},{a - 0.05:.4f},{a + 0.05:.4f},,,")
    (metrics / "evaluate_per_class.csv").write_text("\n".join(lines) + "\n")
    grid = [i / 10 for i in range(11)]
    for init in INITS:
        for pct in PERCENTS:
            roc = ["fpr," + ",".join(SHOWN)] + [
                f"{x}," + ",".join(f"{min(1, x**0.5 + k * 0.01):.4f}" for k in range(3)) for x in grid
            ]
            pr = ["recall," + ",".join(SHOWN)] + [
                f"{x}," + ",".join(f"{1 - 0.7 * x:.4f}" for _ in range(3)) for x in grid
            ]
            (plots / f"evaluate/curves/roc/{init}-{pct}.csv").write_text("\n".join(roc) + "\n")
            (plots / f"evaluate/curves/pr/{init}-{pct}.csv").write_text("\n".join(pr) + "\n")
            (metrics / f"finetune/{init}-{pct}.json").write_text(
                json.dumps({"init": init, "pct": pct, "protocol": "full", "seeds": {"0": {"best_epoch": 3}}})
            )
    score = {"pointing_game": 0.8, "pointing_game_low": 0.7, "pointing_game_high": 0.9, "energy_inside": 0.3, "n": 20}
    gradcam = {column: {name: score for name in SHOWN[:2]} for column in [*INITS, "center_prior"]}
    (metrics / "gradcam.json").write_text(json.dumps(gradcam))
    (metrics / "preprocess.json").write_text(json.dumps({"n_images": 500, "image_size": 64}))
    split = {
        "uncertainty": "zeros",
        "train": {"n_images": 300, "n_studies": 300, "n_patients": 100},
        "label_fractions": {
            str(p): {"n_images": 3 * p, "n_patients": p, "classes_without_positive": []} for p in PERCENTS
        },
    }
    (metrics / "split.json").write_text(json.dumps(split))
    (metrics / "pretrain/moco.json").write_text(json.dumps({"method": "moco", "final_loss": 5.4}))
    for name in ("label_efficiency.png", "auroc_per_class.png"):
        Image.new("RGB", (8, 8), "white").save(plots / "evaluate" / name)
    Image.new("RGB", (400, 160), MAGENTA).save(plots / "gradcam_grid.jpg", quality=95)
    return metrics, plots


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A folder with the small inputs (``metrics/``, ``plots/``) and the ``results/`` the report stage writes."""
    root = tmp_path_factory.mktemp("study")
    metrics, plots = write_inputs(root)
    gather(metrics, plots, root / "results", METHODS, INITS, PERCENTS, SETTINGS)
    return root


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_the_page_fetches_nothing_and_inlines_every_image(study):
    page = (study / "results/report.html").read_bytes()
    assert len(page) < MAX_BYTES
    text = page.decode("utf-8")
    parser = Tags()
    parser.feed(text)
    names = [tag for tag, _ in parser.tags]
    assert "script" not in names and "link" not in names and "iframe" not in names and "object" not in names
    assert "http://" not in text and "https://" not in text and "@import" not in text and "url(" not in text
    for tag, attrs in parser.tags:
        for value in attrs.values():  # srcset, poster, action, ... as well as src and href
            assert not re.match(r"\s*(https?:|ftp:|file:|//)", value or "", re.I), (tag, attrs)
        if "href" in attrs:
            assert attrs["href"].startswith("#"), (tag, attrs)  # links within the page only
        if "src" in attrs:
            assert attrs["src"].startswith("data:"), (tag, attrs)
    images = [attrs["src"] for tag, attrs in parser.tags if tag == "img"]
    kinds = [src.split(";", 1)[0] for src in images]
    # the label-efficiency figure, one ROC/PR figure per percent, the Grad-CAM grid
    assert kinds == ["data:image/svg+xml", *["data:image/png"] * len(PERCENTS), "data:image/jpeg"]
    magic = {"data:image/svg+xml": b"<?xml", "data:image/png": b"\x89PNG", "data:image/jpeg": b"\xff\xd8"}
    for src, kind in zip(images, kinds):
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(magic[kind])


def test_the_page_holds_the_headline_and_names_no_clock_host_or_revision(study):
    text = (study / "results/report.html").read_text(encoding="utf-8")
    assert 'id="headline-table"' in text and 'id="gradcam-table"' in text
    assert "0.746" in text and "0.766" in text and "+0.019" in text  # random and moco at 10%, and the gain
    assert "<small>0.726–0.766</small>" in text  # random's test interval at 10%
    host = socket.gethostname()
    assert len(host) < 4 or host not in text
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert not head or (head not in text and head[:7] not in text)
    assert "git commit that holds this run" in text


def test_a_rerun_writes_the_same_bytes(study, tmp_path):
    metrics, plots = study / "metrics", study / "plots"
    gather(metrics, plots, tmp_path / "again", METHODS, INITS, PERCENTS, SETTINGS)
    assert (tmp_path / "again/report.html").read_bytes() == (study / "results/report.html").read_bytes()


def test_a_data_hash_or_a_timing_a_stage_records_is_shown(study, tmp_path):
    metrics = tmp_path / "metrics"
    shutil.copytree(study / "metrics", metrics)
    recorded = {"n_images": 500, "image_size": 64, "data_hash": "5d41402abc4b2a76", "device": "cuda:0 (H200)"}
    (metrics / "preprocess.json").write_text(json.dumps(recorded))
    gather(metrics, study / "plots", tmp_path / "results", METHODS, INITS, PERCENTS, SETTINGS)
    text = (tmp_path / "results/report.html").read_text(encoding="utf-8")
    assert text.count("5d41402abc4b2a76") == 1 and "No stage records a hash" not in text
    assert "cuda:0 (H200)" in text and "No stage records its machine" not in text
    plain = (study / "results/report.html").read_text(encoding="utf-8")
    assert "No stage records a hash" in plain and "No stage records its machine" in plain


def test_the_stage_runs_on_its_declared_parameters_alone(study, tmp_path):
    """The stage's command with a params file holding only what dvc.yaml declares for it (a key it reads beyond
    them would fail), and the page it writes is the one gather writes."""
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["report"]["params"]
    values = {"methods": METHODS, "inits": INITS, "label_percents": PERCENTS, **SETTINGS}
    tree: dict = {}
    for key in declared:
        *parents, last = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = values[key]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    out = tmp_path / "results"
    report_main([str(study / "metrics"), str(study / "plots"), str(out), "--params", str(tmp_path / "params.yaml")])
    assert (out / "report.html").read_bytes() == (study / "results/report.html").read_bytes()


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    """Headless Chromium with every way out closed: no proxy reachable, no name resolved, no background traffic."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="no /usr/bin/chromium")
def test_chromium_offline_draws_the_page_with_its_images(study, tmp_path):
    from PIL import Image

    page = study / "results/report.html"
    shot = tmp_path / "page.png"
    result = _chromium("--window-size=1300,4000", f"--screenshot={shot}", page.as_uri(), profile=tmp_path / "a")
    assert shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    colours = np.unique(pixels[::4, ::4].reshape(-1, 3), axis=0)
    assert len(colours) > 50  # text, tables and figures, not a blank or error page
    assert (pixels.min(axis=2) < 235).mean() > 0.03
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    magenta = ((r > 200) & (g < 60) & (b > 200)).sum()
    assert magenta > 0.8 * 400 * 160  # the Grad-CAM grid, a data: URI, was decoded and drawn
    dom = _chromium("--dump-dom", page.as_uri(), profile=tmp_path / "b").stdout
    headline = dom[dom.index('id="headline-table"') :]  # the table as the browser parsed it
    headline = headline[: headline.index("</table>")]
    assert "moco</td>" in headline and "0.766" in headline and "+0.019" in headline


def test_the_page_of_the_workspace_run_stays_small(tmp_path):
    """On the run whose outputs are in the workspace (none in a fresh clone), the page stays under the limit."""
    metrics, plots = REPO / "metrics", REPO / "plots"
    if not (metrics / "evaluate.json").is_file() or not (plots / "evaluate/curves").is_dir():
        pytest.skip("no pipeline outputs in this workspace")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    inits, percents = params["inits"], params["label_percents"]
    evaluation = json.loads((metrics / "evaluate.json").read_text())
    if any(str(p) not in evaluation.get(i, {}) for i in inits for p in percents):
        pytest.skip("the workspace's outputs are from other parameters")
    gather(metrics, plots, tmp_path, params["methods"], inits, percents, SETTINGS)
    page = (tmp_path / "report.html").read_bytes()
    assert len(page) < MAX_BYTES and page.count(b"<img ") == 2 + len(percents)
