"""The pipeline at CheXpert's size, stage by stage: wall time, peak memory and disk written.

    python -m bench.rehearsal --workdir /scratch/rehearsal           # the whole rehearsal (about an hour)
    python -m bench.rehearsal --workdir /scratch/rehearsal --stages evaluate   # rerun stages after a fix
    python -m bench.rehearsal --workdir /scratch/rehearsal --record  # into bench/results.json

Clones this repository's HEAD into ``--workdir`` (or brings a clone made
before up to HEAD, keeping its data and DVC cache), sets the ``params`` of
bench/rehearsal.yaml in the clone's params.yaml, and runs every stage alone
with ``dvc repro --single-item``, in the order ``dvc repro`` would. Per stage:

* ``wall_s``: the ``dvc repro`` call, DVC's hashing and caching included;
* ``peak_rss_gib``: the largest sum of resident memory over the process
  tree (DVC, the stage, its worker processes), sampled every 0.2 s, and
  ``peak_private_gib`` the same without file-backed pages (the store's
  memory map is file-backed: the kernel can drop it under pressure);
  ``peak_rss_process_gib``: the largest single process;
* ``disk_written_gib``: growth of the file system's used space, and of it
  ``cache_gib`` the DVC cache's growth (with ``cache.type`` copy, DVC's
  default where the file system has no reflinks, every output is on disk
  twice);
* for training stages, images/s and steps/s from the stage's live log.

Then ``dvc status`` and a no-op ``dvc repro``, twice each, and ``dvc
status`` after the archive and store are touched; the bare ResNet-10's rate
at the store's size (the ceiling fine-tuning is compared with); each method
and one fine-tuning cell again with ResNet-50 (the file's ``resnet50``
values), and the bare ResNet-50's rate; last, the clone's DVC cache
switched from copies to hard links (the time, the disk given back). It needs about 35 GB of free disk and 24 GiB of
memory, and a quiet machine. Results go to ``<workdir>/rehearsal.json`` as
stages finish.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml

from bench._record import record
from cxrssl.io import write_json

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = Path(__file__).with_name("rehearsal.yaml")
GIB = 2**30
# the clone runs on this environment's DVC, and its stages on this environment's python
DVC = [str(Path(sys.executable).with_name("dvc"))]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def update_clone(workdir: Path) -> None:
    """A clone of this repository's HEAD (an existing clone is brought up to it, keeping its data and cache)."""
    if not workdir.exists():
        subprocess.run(["git", "clone", "-q", str(REPO), str(workdir)], check=True)
        return
    lock = (workdir / "dvc.lock").read_bytes()  # what the rehearsal ran: kept across the update
    # the tracked files the rehearsal changed (params.yaml, dvc.lock, the report's results/) go back first
    subprocess.run(["git", "reset", "-q", "--hard", "HEAD"], cwd=workdir, check=True)
    subprocess.run(["git", "pull", "-q", "--ff-only", str(REPO), "HEAD"], cwd=workdir, check=True)
    (workdir / "dvc.lock").write_bytes(lock)


def set_params(workdir: Path, overrides: dict) -> None:
    """The clone's committed params.yaml with ``overrides`` (dotted keys, as ``dvc exp run -S`` takes them)."""
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=workdir, capture_output=True, check=True)
    params = yaml.safe_load(committed.stdout)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        section = params
        for key in parents:
            section = section[key]
        section[leaf] = value  # a misspelt key is refused by the stage that reads its section
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stage_names(workdir: Path) -> list[str]:
    """Every stage, in dvc.yaml's order (which is one that ``dvc repro`` may run them in)."""
    out = subprocess.run([*DVC, "stage", "list", "--name-only"], cwd=workdir, capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr)
    return out.stdout.split()


class Sampler(threading.Thread):
    """The peak resident memory of a process and its descendants."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_total = 0
        self.peak_private = 0
        self.peak_process = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes, private = [], []
            for process in tree:
                try:
                    memory = process.memory_info()
                except psutil.NoSuchProcess:
                    continue
                sizes.append(memory.rss)
                private.append(memory.rss - memory.shared)
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_private = max(self.peak_private, sum(private))
            self.peak_process = max(self.peak_process, max(sizes, default=0))
            time.sleep(0.2)


def du(path: Path) -> int:
    if not path.exists():
        return 0
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


def used(path: Path) -> int:
    return shutil.disk_usage(path).used


def live_rate(workdir: Path, stage: str) -> dict:
    """images/s (and steps/s) of a training stage's last epoch, from its live log."""
    kind, _, item = stage.partition("@")
    if kind not in ("pretrain", "finetune"):
        return {}
    metrics = json.loads((workdir / "live" / kind / item / "metrics.json").read_text())
    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}/{key}" if prefix else key, inner)
        else:
            flat[prefix] = value

    walk("", metrics)
    rates = [v for k, v in flat.items() if k.endswith("perf/images_per_s")]
    if not rates:
        return {}
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    batch = params["pretrain"]["common"]["batch_size"] if kind == "pretrain" else params["finetune"]["batch_size"]
    backbone = params["pretrain"]["common"]["backbone"]
    rate = sum(rates) / len(rates)
    return {"images_per_s": round(rate, 1), "steps_per_s": round(rate / batch, 3), "batch": batch, "backbone": backbone}


def run_stage(workdir: Path, stage: str, logs: Path, force: bool = False) -> dict:
    cache = workdir / ".dvc" / "cache"
    before_used, before_cache = used(workdir), du(cache)
    start = time.perf_counter()
    with (logs / f"{stage}.log").open("w") as log:
        process = subprocess.Popen(
            [*DVC, "repro", "--single-item", *(["--force"] if force else []), stage],
            cwd=workdir,
            env=ENV,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        sampler = Sampler(process.pid)
        sampler.start()
        process.wait()
        sampler.done.set()
        sampler.join()
    wall = time.perf_counter() - start
    if process.returncode:
        sys.exit(f"{stage} failed ({process.returncode}); see {logs / f'{stage}.log'}")
    return {
        **({"forced": True} if force else {}),  # rerun with its outputs already in DVC's cache: nothing written
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(sampler.peak_total / GIB, 2),
        "peak_rss_process_gib": round(sampler.peak_process / GIB, 2),
        "peak_private_gib": round(sampler.peak_private / GIB, 2),
        "disk_written_gib": round((used(workdir) - before_used) / GIB, 2),
        "cache_gib": round((du(cache) - before_cache) / GIB, 2),
        **live_rate(workdir, stage),
    }


def ceilings(backbone: str, batch: int, size: int, steps: int = 4) -> dict:
    """The bare backbone's views/s, forward+backward+AdamW and forward only (``bench.pretrain_throughput``)."""
    from bench.pretrain_throughput import ceiling

    return {
        "batch": batch,
        "size": size,
        "fwd_bwd_views_per_s": round(ceiling(backbone, size, batch, steps), 2),
        "fwd_views_per_s": round(ceiling(backbone, size, batch, steps, backward=False), 2),
    }


def timed(workdir: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([*DVC, *args], cwd=workdir, env=ENV, check=True, capture_output=True)
    return round(time.perf_counter() - start, 2)


def run_stages(workdir: Path, stages: list[str], results: dict, name: str, path: Path, force: bool = False) -> None:
    logs = workdir / "rehearsal-logs"
    logs.mkdir(exist_ok=True)
    results.setdefault(name, {})
    for stage in stages:
        print(f"{stage} ...", flush=True)
        results[name][stage] = run_stage(workdir, stage, logs, force)
        print(f"{stage}: {results[name][stage]}", flush=True)
        for metrics_name in ("preprocess", "split"):  # the data's counts, for bench/time_to_result.py
            metrics = workdir / "metrics" / f"{metrics_name}.json"
            if metrics.exists():
                results[f"{metrics_name}_metrics"] = json.loads(metrics.read_text())
        write_json(path, results)


def noop(workdir: Path) -> dict:
    """``dvc status`` and ``dvc repro`` with nothing to do; then with the archive and store touched."""
    result = {
        "status_s": [timed(workdir, "status") for _ in range(2)],
        "repro_s": [timed(workdir, "repro") for _ in range(2)],
    }
    # a new mtime (a copy, an rsync) makes DVC hash the files again before it trusts them
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    for big in (workdir / params["data"]["root"], workdir / "data" / "preprocessed" / "images.npy"):
        big.touch()
    result["status_after_touch_s"] = [timed(workdir, "status") for _ in range(2)]
    print(f"no-op: {result}", flush=True)
    return result


def relink(workdir: Path) -> dict:
    """Hard links instead of copies between the workspace and DVC's cache: the disk it gives back, the time."""
    before = used(workdir)
    subprocess.run([*DVC, "config", "--local", "cache.type", "reflink,hardlink,copy"], cwd=workdir, check=True)
    seconds = timed(workdir, "checkout", "--relink")
    result = {
        "cache_type": "reflink,hardlink,copy",
        "checkout_relink_s": seconds,
        "disk_freed_gib": round((before - used(workdir)) / GIB, 2),
        "status_s": [timed(workdir, "status") for _ in range(2)],
    }
    print(f"relink: {result}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="the clone (made if missing)")
    parser.add_argument("--stages", nargs="*", help="rerun these stages only (default: the whole rehearsal)")
    parser.add_argument("--as", dest="name", default="stages", help="record --stages under this name")
    parser.add_argument("--force", action="store_true", help="run --stages even where DVC finds them up to date")
    parser.add_argument("--noop", action="store_true", help="only time dvc status and a no-op dvc repro")
    parser.add_argument("--resnet50", action="store_true", help="only the ResNet-50 pass (or its --stages)")
    parser.add_argument("--relink", action="store_true", help="only switch the clone's DVC cache to hard links")
    parser.add_argument("--record", action="store_true", help="copy <workdir>/rehearsal.json into bench/results.json")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    path = workdir / "rehearsal.json"
    if args.record:
        record("rehearsal", json.loads(path.read_text()))
        return
    plan = yaml.safe_load(OVERRIDES.read_text())
    if not args.noop:  # --noop times the clone as it is
        update_clone(workdir)
    set_params(workdir, plan["params"])
    results = json.loads(path.read_text()) if path.exists() else {}
    results["overrides"] = plan
    results["cache_type"] = (
        subprocess.run([*DVC, "config", "cache.type"], cwd=workdir, capture_output=True, text=True).stdout.strip()
        or "default (reflink, else copy)"
    )
    results["threads"] = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    if args.noop:  # after the ResNet-50 pass: DVC's run cache first brings back the rehearsal's own outputs
        subprocess.run([*DVC, "repro"], cwd=workdir, env=ENV, check=True, capture_output=True)
        results["noop"] = noop(workdir)
        write_json(path, results)
        return
    if args.relink:
        results["relink"] = relink(workdir)
        write_json(path, results)
        return
    if args.resnet50:
        resnet50(workdir, plan, results, path, args.stages)
        return
    if args.stages:
        run_stages(workdir, args.stages, results, args.name, path, args.force)
        return
    done = results.get("stages", {})  # a rehearsal run in parts goes on where it stopped
    run_stages(workdir, [s for s in stage_names(workdir) if s not in done], results, "stages", path)
    results["noop"] = noop(workdir)
    results["sizes_gib"] = {
        name: round(du(workdir / name) / GIB, 2)
        for name in ("data/phantoms", "data/preprocessed", "data/splits", "models", ".dvc/cache")
    }
    batch = yaml.safe_load((workdir / "params.yaml").read_text())["finetune"]["batch_size"]
    results["resnet10_ceiling"] = ceilings("resnet10", batch, results["preprocess_metrics"]["image_size"])
    write_json(path, results)
    resnet50(workdir, plan, results, path)
    results["relink"] = relink(workdir)
    write_json(path, results)


def resnet50(workdir: Path, plan: dict, results: dict, path: Path, stages: list[str] | None = None) -> None:
    """Each method, then the plan's fine-tuning cells, with ResNet-50 (the plan's ``resnet50`` values).

    Then the bare ResNet-50's rate, unless ``stages`` names only some of them.
    """
    set_params(workdir, {**plan["params"], **plan["resnet50"]})
    if stages is None:
        methods = yaml.safe_load((workdir / "params.yaml").read_text())["methods"]
        stages = [f"pretrain@{m}" for m in methods] + plan["resnet50_finetune"]
    run_stages(workdir, stages, results, "resnet50", path)
    if stages[0].startswith("pretrain@"):
        size = results["preprocess_metrics"]["image_size"]
        results["resnet50_ceiling"] = ceilings("resnet50", plan["resnet50"]["pretrain.common.batch_size"], size)
        write_json(path, results)
    set_params(workdir, plan["params"])  # the clone as the rehearsal left it


if __name__ == "__main__":
    main()
