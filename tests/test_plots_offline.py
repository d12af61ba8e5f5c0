"""`dvc plots show` draws its charts with no network: the repository's HTML template (web/dvc_plots.html) carries
Vega, Vega-Lite and Vega-Embed inlined, where DVC's own page loads them from a CDN. The page is rendered by
headless Chromium with every network request refused, on a small DVC repository made here."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from configobj import ConfigObj

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "web" / "dvc_plots.html"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")

# Prepended to the page before rendering: uncaught errors, failed script loads (capture phase: they do not
# bubble), rejected promises (vegaEmbed's) and console.error (where Vega reports its errors) are written
# into an attribute of <html>, which the dumped DOM then shows.
RECORDER = """<script>
(function () {
    var errors = [];
    function record(message) {
        errors.push(String(message));
        document.documentElement.setAttribute("data-script-errors", JSON.stringify(errors));
    }
    window.addEventListener("error", function (e) {
        record(e.message || "failed to load " + (e.target && (e.target.src || e.target.href)));
    }, true);
    window.addEventListener("unhandledrejection", function (e) { record("unhandled rejection: " + e.reason); });
    var consoleError = console.error;
    console.error = function () {
        record(Array.prototype.join.call(arguments, " "));
        return consoleError.apply(console, arguments);
    };
})();
</script>"""

LABEL_EFFICIENCY = "pct,random,moco\n1,0.61,0.66\n10,0.70,0.74\n100,0.78,0.80\n"
ROC = "fpr,Cardiomegaly,Edema\n0.0,0.0,0.0\n0.2,0.6,0.5\n0.5,0.85,0.8\n1.0,1.0,1.0\n"
DVC_YAML = """plots:
  - label efficiency:
      template: linear
      x: pct
      y:
        curves/label_efficiency.csv: [random, moco]
  - curves/roc:
      template: linear
      x: fpr
      y: [Cardiomegaly, Edema]
"""


def repo_template_setting() -> str:
    """plots.html_template in the repository's .dvc/config (DVC reads a relative path from .dvc/)."""
    return ConfigObj(str(REPO / ".dvc" / "config"))["plots"]["html_template"]


def make_dvc_repo(root: Path, template_setting: str | None) -> Path:
    """A DVC repository (no git) with three linear plots (one definition, and one per file of a folder),
    configured like this one when ``template_setting`` is given (the template copied to where it points)."""
    (root / ".dvc").mkdir(parents=True)
    config = "[core]\n    no_scm = true\n    analytics = false\n    check_update = false\n"
    if template_setting is not None:
        config += f"[plots]\n    html_template = {template_setting}\n"
        target = (root / ".dvc" / template_setting).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(TEMPLATE, target)
    (root / ".dvc" / "config").write_text(config)
    (root / "curves" / "roc").mkdir(parents=True)
    (root / "curves" / "label_efficiency.csv").write_text(LABEL_EFFICIENCY)
    for cell in ("random-10", "moco-10"):
        (root / "curves" / "roc" / f"{cell}.csv").write_text(ROC)
    (root / "dvc.yaml").write_text(DVC_YAML)
    return root


def plots_show(repo: Path, out: Path, *args: str) -> Path:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(repo.parent / "dvc-site-cache")}
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "-o", str(out), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "index.html"


def render_offline(page: Path, profile: Path) -> str:
    """The DOM of ``page`` after headless Chromium ran its scripts, every request to the network refused."""
    checked = page.with_name("checked.html")  # next to the page, so that relative paths still resolve
    html = page.read_text(encoding="utf-8")
    checked.write_text(html.replace("<head>", "<head>\n" + RECORDER, 1), encoding="utf-8")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        # no network: every http(s) request goes to a closed port, and no host name resolves
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=10000",
        "--dump-dom",
        checked.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "</html>" in result.stdout, result.stderr[-3000:]
    return result.stdout


class _Charts(HTMLParser):
    """For each plot div, whether a Vega chart (canvas or svg of class "marks") was drawn inside it."""

    def __init__(self, ids: set[str]):
        super().__init__()
        self.ids, self.drawn, self.errors = ids, {}, []
        self.depth, self.open = 0, []  # div nesting, and the plot divs open as (id, depth)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html" and attrs.get("data-script-errors"):
            self.errors = json.loads(attrs["data-script-errors"])
        if tag == "div":
            self.depth += 1
            if attrs.get("id") in self.ids:
                self.open.append((attrs["id"], self.depth))
                self.drawn.setdefault(attrs["id"], False)
        if tag in ("canvas", "svg") and "marks" in (attrs.get("class") or "").split() and self.open:
            self.drawn[self.open[-1][0]] = True

    def handle_endtag(self, tag):
        if tag == "div":
            if self.open and self.open[-1][1] == self.depth:
                self.open.pop()
            self.depth -= 1


def charts(page: Path, dom: str) -> tuple[dict[str, bool], list[str]]:
    """Each plot of ``page`` (the divs DVC asks vegaEmbed to fill) with whether it drew, and the script errors."""
    ids = set(re.findall(r"vegaEmbed\('#([^']+)'", page.read_text(encoding="utf-8")))
    assert ids, "no Vega plot in the page"
    parser = _Charts(ids)
    parser.feed(dom)
    return {i: parser.drawn.get(i, False) for i in sorted(ids)}, parser.errors


def load_builder():
    spec = importlib.util.spec_from_file_location("build_template", REPO / "web" / "build_template.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_template_is_built_from_the_vendored_scripts():
    assert TEMPLATE.read_text(encoding="utf-8") == load_builder().render(), "run python web/build_template.py"


def test_repository_config_points_at_the_template():
    assert (REPO / ".dvc" / repo_template_setting()).resolve() == TEMPLATE


@needs_chromium
def test_offline_page_draws_every_plot(tmp_path):
    repo = make_dvc_repo(tmp_path / "repo", repo_template_setting())
    page = plots_show(repo, tmp_path / "out")
    html = page.read_text(encoding="utf-8")
    assert "<script src=" not in html and "cdn.jsdelivr" not in html

    drawn, errors = charts(page, render_offline(page, tmp_path / "profile"))

    assert errors == []
    assert len(drawn) == 3  # label efficiency, and the two ROC files
    assert all(drawn.values()), drawn


@needs_chromium
def test_cdn_page_draws_nothing_offline(tmp_path):
    """DVC's default page (no template configured), under the same check: no chart, and errors; the check can fail."""
    repo = make_dvc_repo(tmp_path / "repo", None)
    page = plots_show(repo, tmp_path / "out")
    assert "cdn.jsdelivr.net/npm/vega@" in page.read_text(encoding="utf-8")

    drawn, errors = charts(page, render_offline(page, tmp_path / "profile"))

    assert len(drawn) == 3 and not any(drawn.values()), drawn
    assert any("vegaEmbed is not defined" in e for e in errors), errors
    assert any(e.startswith("failed to load https://cdn.jsdelivr.net/") for e in errors), errors
