"""What reading CheXpert's zip in place costs each preprocess worker: opening its member table.

    python -m bench.archive_open [members]      (default 224,316: CheXpert-v1.0-small's files)

Writes a stored archive of empty members named as CheXpert's are, then, in a
fresh process, times the first ``cxrssl.data.archive`` access and the memory
the open handle holds (VmRSS before and after). Results go to bench/results.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bench._record import record

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys, time
sys.path.insert(0, {repo!r})
from cxrssl.data import archive

def rss_mib():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) / 1024

before, start = rss_mib(), time.perf_counter()
archive.exists({path!r} + "::CheXpert-v1.0-small/train.csv")
print(json.dumps({{"open_s": round(time.perf_counter() - start, 2), "held_mib": round(rss_mib() - before)}}))
"""


def main() -> None:
    members = int(sys.argv[1]) if len(sys.argv) > 1 else 224_316
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "CheXpert-v1.0-small.zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as handle:
            for i in range(members):
                handle.writestr(
                    f"CheXpert-v1.0-small/train/patient{i // 4:05d}/study{i % 4 + 1}/view1_frontal.jpg", b""
                )
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", PROBE.format(repo=str(REPO), path=path)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(3)
        ]
    result = {
        "members": members,
        "open_s": min(r["open_s"] for r in runs),
        "held_mib": max(r["held_mib"] for r in runs),
        "runs": runs,
    }
    record("archive_open", result)
    print(result)


if __name__ == "__main__":
    main()
