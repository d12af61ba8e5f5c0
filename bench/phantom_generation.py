"""Phantom generation rate: the phantoms stage's own code, at the default size, on this machine.

    python -m bench.phantom_generation [n_patients]

Written into a zip archive, as the stage does, and into a folder tree.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench._record import record
from cxrssl.params import load_section
from cxrssl.phantoms.dataset import PhantomConfig, generate


def main() -> None:
    config = load_section(PhantomConfig, "phantoms")
    if len(sys.argv) > 1:
        config = PhantomConfig(**{**asdict(config), "n_patients": int(sys.argv[1])})
    result: dict = {"height": config.height, "width": config.width, "workers": config.workers}
    for into in ("zip", "folder"):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            if into == "zip":
                with open(Path(tmp) / "phantoms.zip", "wb") as handle:
                    summary = generate(config, handle, progress=False)
            else:
                summary = generate(config, Path(tmp), progress=False)
            seconds = time.perf_counter() - start
        images = sum(part["n_images"] for part in summary.values())
        result |= {"images": images, into: {"seconds": round(seconds, 1), "images_per_s": round(images / seconds, 1)}}
    record("phantom_generation", result)
    print(result)


if __name__ == "__main__":
    main()
