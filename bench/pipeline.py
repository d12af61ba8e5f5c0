"""The whole study from scratch: `dvc repro` in a fresh clone with an empty cache, timed per stage.

    python -m bench.pipeline            # needs the project's .venv; takes what `make run` takes

Clones this repository's HEAD into a temporary folder, gives the clone an
empty DVC cache (so nothing comes from a run cache), runs ``dvc repro`` and
times each stage from DVC's own "Running stage" lines. Also checks that the
clone's results/ are byte-identical to the committed ones. Recorded in
bench/results.json under ``pipeline``. Run it with nothing else on the
machine: a second job on the cores slows every stage.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._record import record

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cxrssl-pipeline-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        dvc = str(Path(sys.executable).with_name("dvc"))
        subprocess.run([dvc, "cache", "dir", "--local", str(Path(tmp) / "cache")], cwd=clone, check=True)
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": tmp}
        starts: list[tuple[str, float]] = []
        begin = time.perf_counter()
        with subprocess.Popen(
            [dvc, "repro"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            for line in process.stdout:
                if line.startswith("Running stage"):
                    starts.append((line.split("'")[1], time.perf_counter()))
        total = time.perf_counter() - begin
        if process.returncode:
            sys.exit(f"dvc repro failed ({process.returncode})")
        ends = [t for _, t in starts[1:]] + [begin + total]
        stages = {name: round(end - start, 1) for (name, start), end in zip(starts, ends, strict=True)}
        same = all(
            (clone / "results" / f.name).read_bytes() == f.read_bytes()
            for f in (REPO / "results").iterdir()
            if f.suffix in (".json", ".csv")
        )
        shutil.rmtree(clone / ".dvc", ignore_errors=True)
    print(f"dvc repro from scratch: {total / 60:.1f} min; results identical to the committed ones: {same}")
    record("pipeline", {"repro_minutes": round(total / 60, 1), "stages_s": stages, "results_identical": same})


if __name__ == "__main__":
    main()
