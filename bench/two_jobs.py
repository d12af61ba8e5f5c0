"""Two jobs on one machine: a fine-tuning stage alone, beside a busy process, beside a second copy of itself.

    python -m bench.two_jobs            # after dvc repro; about 15 minutes on 2 cores, nothing else running

The job is the ``finetune@random-10`` stage's own command (100 optimiser
steps end to end, then val and test scoring), run into a temporary folder.
It runs alone; beside a plain busy process (one Python loop, as another
program on the workstation); and beside a second copy of itself (as
``dvc queue start -j 2`` or two experiments would run it). Each arrangement
runs with PyTorch's default thread count (the cores this process may use)
and with ``OMP_NUM_THREADS`` set to half of them, three times; the median
wall time of the measured job is recorded, and its slowdown against the
same job alone at the default thread count. Recorded in bench/results.json
under ``two_jobs``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._record import record

REPO = Path(__file__).resolve().parents[1]
REPEATS = 3


def job(folder: Path, env: dict) -> subprocess.Popen:
    """The finetune@random-10 stage's command, writing into ``folder``."""
    outs = [folder / name for name in ("cell", "m.json", "p.csv", "live")]
    command = [sys.executable, "-m", "stages.finetune", "--cell", "random-10", "data/preprocessed", "data/splits"]
    command += ["models/pretrain/random.pt", *map(str, outs), "--checkpoints", str(folder / "ck")]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def timed(arrangement: str, threads: int | None, tmp: Path) -> float:
    """Wall seconds of one job in ``arrangement`` ("alone", "busy", "twin")."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    other = busy() if arrangement == "busy" else job(tmp / "twin", env) if arrangement == "twin" else None
    start = time.perf_counter()
    measured = job(tmp / "measured", env)
    code = measured.wait()
    seconds = time.perf_counter() - start
    if other is not None:
        if arrangement == "twin":
            other.wait()  # the twin runs to its end too: both jobs shared the machine throughout
        else:
            other.kill()
            other.wait()
    if code:
        sys.exit(f"the finetune job failed ({code}) in {arrangement}")
    return seconds


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    settings = {"default": None, f"OMP_NUM_THREADS={max(1, cores // 2)}": max(1, cores // 2)}
    out: dict = {"job": "finetune@random-10 (stages.finetune)", "cores": cores, "repeats": REPEATS}
    with tempfile.TemporaryDirectory(prefix="cxrssl-two-jobs-") as tmp:
        for name, threads in settings.items():
            out[name] = {}
            for arrangement in ("alone", "busy", "twin"):
                runs = [timed(arrangement, threads, Path(tmp)) for _ in range(REPEATS)]
                out[name][arrangement] = {
                    "median_s": round(statistics.median(runs), 1),
                    "runs_s": [round(r, 1) for r in runs],
                }
                print(name, arrangement, out[name][arrangement], flush=True)
    alone = out["default"]["alone"]["median_s"]
    for name in settings:
        for arrangement in ("alone", "busy", "twin"):
            out[name][arrangement]["slowdown"] = round(out[name][arrangement]["median_s"] / alone, 2)
    record("two_jobs", out)


if __name__ == "__main__":
    main()
