"""The real dvc.yaml on a tiny configuration: `dvc repro` runs, and a parameter change reruns only its branch."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")

TINY = {
    "phantoms": {"n_patients": 24, "n_valid_patients": 8, "height": 96, "width": 80, "workers": 2},
    "preprocess": {"size": 32, "workers": 2},
    "split": {"val_fraction": 0.25},
    "label_percents": [50, 100],
    "inits": ["random", "moco"],
    "pretrain": {"common": {"epochs": 1, "batch_size": 8, "probe_images": 16},
                 "moco": {"hidden_dim": 32, "dim": 16, "queue_size": 16},
                 "simclr": {"hidden_dim": 32, "dim": 16},
                 "byol": {"hidden_dim": 32, "dim": 16},
                 "swav": {"hidden_dim": 32, "dim": 16, "n_prototypes": 20, "n_local": 2,
                          "freeze_prototypes_steps": 1}},
    "finetune": {"linear_epochs": 2, "linear_min_steps": 0, "evaluations": 2},
    "evaluate": {"bootstrap": 20},
    "gradcam": {"per_class": 1},
}


def dvc(*args, cwd):
    env = {**os.environ, "PATH": f"{DVC.parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    result = subprocess.run([str(DVC), *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def set_params(folder: Path, changes: dict) -> None:
    params = yaml.safe_load((folder / "params.yaml").read_text())
    for section, values in changes.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if isinstance(value, dict):
                    params[section][key].update(value)
                else:
                    params[section][key] = value
        else:
            params[section] = values
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def changed_stages(folder: Path) -> set[str]:
    out = dvc("status", cwd=folder)
    return {line.rstrip(":").strip() for line in out.splitlines()
            if line and not line.startswith((" ", "\t")) and "up to date" not in line}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    if not DVC.is_file():
        pytest.skip("dvc is not installed next to this Python")
    folder = tmp_path_factory.mktemp("dvc")
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, folder / name)
    for name in ("stages", "cxrssl"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    dvc("init", "-q", cwd=folder)
    dvc("config", "core.analytics", "false", cwd=folder)
    set_params(folder, TINY)
    dvc("repro", "-q", cwd=folder)
    return folder


def test_the_whole_pipeline_runs_and_is_then_up_to_date(repo):
    assert (repo / "metrics/evaluate.json").is_file()
    assert changed_stages(repo) == set()


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


def test_a_method_parameter_reruns_only_that_method_branch(repo):
    set_params(repo, {"pretrain": {"moco": {"temperature": 0.3}}})
    assert changed_stages(repo) == {"pretrain@moco"}  # its dependants follow through its output
    out = dvc("repro", cwd=repo)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"pretrain@moco", "finetune@moco-50", "finetune@moco-100", "evaluate", "gradcam"}


def test_a_shared_remote_gives_a_fresh_clone_every_output_and_nothing_to_rerun(repo, tmp_path):
    """A local folder stands in for the team's S3 or SSH remote: push, clone afresh, pull, repro reruns nothing."""
    dvc("repro", "-q", cwd=repo)  # up to date whatever the tests before changed
    dvc("remote", "add", "-f", "-d", "shared", str(tmp_path / "remote"), cwd=repo)
    (repo / ".gitignore").write_text("__pycache__/\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "run"], cwd=repo, check=True)
    dvc("push", "-q", "--run-cache", cwd=repo)

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert not (clone / "models/pretrain/moco.pt").exists()
    dvc("pull", "-q", "--run-cache", cwd=clone)
    assert (clone / "models/pretrain/moco.pt").read_bytes() == (repo / "models/pretrain/moco.pt").read_bytes()
    assert changed_stages(clone) == set()
    out = dvc("repro", cwd=clone)
    assert "Running stage" not in out and "up to date" in out
