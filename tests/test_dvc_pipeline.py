"""The real dvc.yaml on a tiny configuration: what a change reruns, and what DVC's caches restore."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import live_log, merged, project_params
from tests.imports import needed_code, stage_definitions

REPO = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")

TINY = {
    "phantoms": {"n_patients": 24, "n_valid_patients": 8, "height": 96, "width": 80, "workers": 2},
    "preprocess": {"image_size": 32, "workers": 2},
    "split": {"val_fraction": 0.25},
    "label_percents": [50, 100],
    "methods": ["moco"],
    "inits": ["random", "moco"],
    "pretrain": {
        "common": {"epochs": 1, "batch_size": 8, "probe_images": 16},
        "moco": {"hidden_dim": 32, "dim": 16, "queue_size": 16},
    },
    "finetune": {"linear_epochs": 2, "linear_min_steps": 0, "evaluations": 2, "linear_pcts": [50, 100]},
    "evaluate": {"bootstrap": 20},
    "gradcam": {"per_class": 1},
}
pytestmark = pytest.mark.slow


def dvc(*args, cwd):
    env = {**os.environ, "PATH": f"{DVC.parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    env.pop("DVC_STAGE", None)
    result = subprocess.run([str(DVC), *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args], cwd=cwd, check=True)


def set_params(folder: Path, changes: dict) -> None:
    params = merged(yaml.safe_load((folder / "params.yaml").read_text()), changes)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def changed_stages(folder: Path) -> set[str]:
    out = dvc("status", cwd=folder)
    return {
        line.rstrip(":").strip()
        for line in out.splitlines()
        if line and not line.startswith((" ", "\t")) and "up to date" not in line
    }


def ran(out: str) -> set[str]:
    """The stages a `dvc repro` or `dvc exp run` ran (not those it restored from the run cache)."""
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


def all_stages(folder: Path) -> dict[str, str]:
    """{stage name as DVC prints it: its dvc.yaml definition}."""
    params = yaml.safe_load((folder / "params.yaml").read_text())
    names = {name: name for name in ("phantoms", "preprocess", "split", "evaluate", "gradcam", "report")}
    names.update({f"pretrain@{m}": "pretrain" for m in params["methods"]})
    names.update({f"baseline@{b}": "baseline" for b in params["baselines"]})
    names.update({f"finetune@{i}-{p}": "finetune" for i in params["inits"] for p in params["label_percents"]})
    return names


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    if not DVC.is_file():
        pytest.skip("dvc is not installed next to this Python")
    folder = tmp_path_factory.mktemp("dvc")
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, folder / name)
    for name in ("stages", "cxrssl"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "params.yaml").write_text(yaml.safe_dump(project_params(**TINY), sort_keys=False))
    (folder / ".gitignore").write_text("__pycache__/\n")
    git("init", "-q", cwd=folder)
    dvc("init", "-q", cwd=folder)
    dvc("config", "core.analytics", "false", cwd=folder)
    dvc("repro", "-q", cwd=folder)
    git("add", "-A", cwd=folder)
    git("commit", "-q", "-m", "run", cwd=folder)
    return folder


def test_the_whole_pipeline_runs_and_is_then_up_to_date(repo):
    assert (repo / "results/headline.json").is_file()
    assert changed_stages(repo) == set()
    tracked = subprocess.run(
        ["git", "ls-files", "metrics", "plots", "results", "models", "data"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {Path(f).parts[0] for f in tracked if not f.endswith(".gitignore")} == {"results"}  # the rest is DVC's


def declared_params(entry: dict) -> dict:
    """A params file holding only what a dvc.lock entry lists (``pretrain.common`` nested back into a tree)."""
    tree: dict = {}
    for key, value in entry.get("params", {}).get("params.yaml", {}).items():
        *parents, last = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


def test_every_stage_rerun_on_only_its_declared_parameters_writes_the_same_bytes(repo, tmp_path):
    """Each locked command runs again by hand with a params file holding only the parameters dvc.yaml declares
    for it: a stage reading an undeclared key fails with ParamError naming it, and any run-to-run noise in an
    output (a timing, an unseeded draw) changes a hash in dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    env = {**os.environ, "PATH": f"{DVC.parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    # the live logs' perf/ (images/s) is the one wall-clock figure an output may hold: compared without it,
    # then put back so that DVC can check every other byte
    live = {folder: live_log(folder) for folder in sorted((repo / "live").glob("*/*"))}
    kept = tmp_path / "live-as-locked"
    shutil.copytree(repo / "live", kept)
    for name, entry in lock.items():  # dvc.lock keeps dvc.yaml's order, which runs upstream first
        params = tmp_path / f"{name}.yaml"
        params.write_text(yaml.safe_dump(declared_params(entry)))
        command = f"{entry['cmd']} --params {params}"
        result = subprocess.run(
            command, shell=True, cwd=repo, capture_output=True, text=True, env={**env, "DVC_STAGE": name}
        )
        assert result.returncode == 0, f"{name} on its declared parameters only:\n{result.stderr[-2000:]}"
    assert len(live) == 1 + 4 and {folder: live_log(folder) for folder in live} == live  # pretrain@moco, 4 cells
    shutil.rmtree(repo / "live")
    shutil.copytree(kept, repo / "live")
    assert changed_stages(repo) == set()  # every output has the bytes dvc.lock recorded


def test_python_byte_code_does_not_change_a_code_dependency(repo):
    cache = repo / "cxrssl/methods/__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "stale.cpython-311.pyc").write_bytes(b"\x00" * 16)  # a clone without them must match the lock
    assert changed_stages(repo) == set()


def test_a_finetune_parameter_reruns_only_finetune_and_evaluate(repo):
    set_params(repo, {"finetune": {"linear_lr": 0.02}})
    stages = changed_stages(repo)
    assert stages == {f"finetune@{init}-{pct}" for init in ("random", "moco") for pct in (50, 100)}
    set_params(repo, {"finetune": {"linear_lr": TINY["finetune"].get("linear_lr", 0.01)}})
    assert changed_stages(repo) == set()


@pytest.mark.parametrize(
    "file",
    [
        "cxrssl/data/chexpert.py",
        "cxrssl/data/splits.py",
        "cxrssl/data/store.py",
        "cxrssl/metrics.py",
        "cxrssl/methods/moco.py",
    ],
)
def test_editing_a_library_file_marks_exactly_the_stages_that_import_it(repo, file):
    definitions = stage_definitions()
    expected = {name for name, stage in all_stages(repo).items() if REPO / file in needed_code(definitions[stage])}
    path = repo / file
    original = path.read_text()
    try:
        path.write_text(original + "\n# an edit\n")
        assert changed_stages(repo) == expected
    finally:
        path.write_text(original)
    assert changed_stages(repo) == set()


def test_a_method_parameter_reruns_only_that_method_branch(repo):
    set_params(repo, {"pretrain": {"moco": {"temperature": 0.3}}})
    assert changed_stages(repo) == {"pretrain@moco"}  # its dependants follow through its output
    assert ran(dvc("repro", cwd=repo)) == {
        "pretrain@moco",
        "finetune@moco-50",
        "finetune@moco-100",
        "evaluate",
        "gradcam",
        "report",
    }
    set_params(repo, {"pretrain": {"moco": {"temperature": 0.2}}})
    dvc("repro", "-q", cwd=repo)  # back to the committed outputs, from the run cache


def test_the_image_size_reaches_the_store_and_returns_from_the_run_cache(repo):
    set_params(repo, {"preprocess": {"image_size": 40}})
    # evaluate reads the preprocess section for another dataset's images (cross_dataset)
    assert changed_stages(repo) == {"preprocess", "evaluate"}
    out = dvc("repro", cwd=repo)
    assert np.load(repo / "data/preprocessed/images.npy", mmap_mode="r").shape[1:] == (40, 40)
    # the index does not change, so split stays; everything that reads the pixels reruns
    assert ran(out) == {
        "preprocess",
        "pretrain@moco",
        "evaluate",
        "gradcam",
        "report",
        *(f"finetune@{i}-{p}" for i in ("random", "moco") for p in (50, 100)),
    }
    set_params(repo, {"preprocess": {"image_size": 32}})
    out = dvc("repro", cwd=repo)
    # every stage comes back from the run cache but report, which reruns (seconds): DVC run-caches no stage
    # with a git-kept output that is not a metric or plot, and results/report.html is one
    assert ran(out) == {"report"}
    assert np.load(repo / "data/preprocessed/images.npy", mmap_mode="r").shape[1:] == (32, 32)
    assert changed_stages(repo) == set()


def test_a_new_method_is_one_edit_of_params(repo):
    set_params(
        repo,
        {
            "methods": ["moco", "simclr"],
            "inits": ["random", "moco", "simclr"],
            "pretrain": {"simclr": {"hidden_dim": 32, "dim": 16}},
        },
    )
    try:
        assert changed_stages(repo) == {
            "pretrain@simclr",
            "finetune@simclr-50",
            "finetune@simclr-100",
            "evaluate",
            "gradcam",
            "report",
        }
    finally:
        git("checkout", "params.yaml", cwd=repo)


def test_a_list_entry_never_reaches_a_shell(repo):
    set_params(repo, {"baselines": ["random", "x; touch pwned"], "inits": ["random", "moco"]})
    try:
        env = {**os.environ, "PATH": f"{DVC.parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
        result = subprocess.run([str(DVC), "repro"], cwd=repo, capture_output=True, text=True, env=env)
        assert result.returncode != 0
        assert "error: baseline: params: baselines has 'x; touch pwned'; expected a name" in result.stderr
        assert not (repo / "pwned").exists()
    finally:
        git("checkout", "params.yaml", "dvc.lock", cwd=repo)
    assert changed_stages(repo) == set()


def test_a_shared_remote_gives_a_fresh_clone_every_output_and_nothing_to_rerun(repo, tmp_path):
    """A local folder stands in for the team's S3 or SSH remote: push, clone afresh, pull, repro reruns nothing."""
    git("checkout", "params.yaml", cwd=repo)
    dvc("repro", "-q", cwd=repo)  # up to date whatever the tests before changed
    dvc("remote", "add", "-f", "-d", "shared", str(tmp_path / "remote"), cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "remote", cwd=repo)
    dvc("push", "-q", "--run-cache", cwd=repo)  # the committed run's outputs
    variant = ["-S", "finetune.linear_lr=0.03"]
    assert ran(dvc("exp", "run", *variant, cwd=repo)) == {
        f"finetune@{i}-{p}" for i in ("random", "moco") for p in (50, 100)
    } | {"evaluate", "gradcam", "report"}
    dvc("push", "-q", "--run-cache", cwd=repo)  # and the variant's, with the run cache that maps params to them

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert not (clone / "models/pretrain/moco.pt").exists()
    dvc("pull", "-q", "--run-cache", cwd=clone)
    assert (clone / "models/pretrain/moco.pt").read_bytes() == (repo / "models/pretrain/moco.pt").read_bytes()
    committed = (clone / "results/evaluate.json").read_bytes()
    assert changed_stages(clone) == set()
    out = dvc("repro", cwd=clone)
    assert "Running stage" not in out and "up to date" in out
    # the variant a teammate already ran comes back from the run cache (--pull fetches the outputs it names),
    # evaluate and gradcam included; only report runs (a second): its outputs are the ones git keeps, and
    # DVC's remotes carry no git-kept output
    out = dvc("exp", "run", "--pull", *variant, cwd=clone)
    assert ran(out) == {"report"}, out
    for name in ("metrics/evaluate.json", "results/evaluate.json", "models/finetune/moco-50/predictions.csv"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes(), name
    assert (clone / "results/evaluate.json").read_bytes() != committed


def test_queued_variants_run_and_compare_on_val(repo):
    """The README's loop: queue variants, `dvc queue start`, then one table that shows what changed."""
    import csv
    import time

    for bootstrap in (50, 60):  # evaluate and report rerun; everything else comes from the run cache
        dvc("exp", "run", "--queue", "-S", f"evaluate.bootstrap={bootstrap}", cwd=repo)
    dvc("queue", "start", "-j", "1", cwd=repo)
    deadline = time.monotonic() + 600
    while any(word in dvc("queue", "status", cwd=repo) for word in ("Queued", "Running")):
        assert time.monotonic() < deadline, dvc("queue", "status", cwd=repo)
        time.sleep(2)
    assert dvc("queue", "status", cwd=repo).count("Success") == 2
    table = list(csv.DictReader(dvc("exp", "show", "--csv", "--only-changed", cwd=repo).splitlines()))
    # the two queued (other tests' experiments may be listed too)
    variants = [row for row in table if row["typ"].startswith("branch") and row["evaluate.bootstrap"] in ("50", "60")]
    assert sorted(row["evaluate.bootstrap"] for row in variants) == ["50", "60"]
    assert variants[0]["test_low.moco.50"] != variants[1]["test_low.moco.50"]  # the intervals moved with resamples
    assert changed_stages(repo) == set()  # the workspace is left as it was
    dvc("exp", "remove", "--all-commits", "--queue", "-A", cwd=repo)  # the queue's records, for the next tests
