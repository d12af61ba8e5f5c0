"""``dvc repro`` when nothing changed: how long a user waits to learn that all is up to date.

    python -m bench.dvc_noop [--runs 5]

Runs ``dvc repro`` (and ``dvc status``) in the repository ``--runs`` times
after the pipeline is up to date, and records the median wall time in
bench/results.json under ``dvc_noop``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from bench._record import record


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    dvc = shutil.which("dvc") or sys.exit("dvc is not on PATH (activate .venv)")
    status = subprocess.run([dvc, "status", "-q"], capture_output=True)
    if status.returncode != 0:
        sys.exit("the pipeline is not up to date; run dvc repro first")
    results = {}
    for name, command in (("repro", [dvc, "repro", "-q"]), ("status", [dvc, "status", "-q"])):
        times = [timed(command) for _ in range(args.runs)]
        results[name] = {"median_s": round(statistics.median(times), 2), "runs_s": [round(t, 2) for t in times]}
        print(f"dvc {name} with nothing to do: median {results[name]['median_s']} s over {args.runs} runs")
    record("dvc_noop", {"stages": 25, **results})


if __name__ == "__main__":
    main()
