"""Stage ``phantoms``: generate the embedded default dataset in CheXpert's format.

    python -m stages.phantoms data/phantoms/CheXpert-v1.0-small
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cxrssl.data.phantoms import PhantomConfig, generate
from cxrssl.io import atomic_dir
from cxrssl.params import load_section
from stages._cli import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the phantom CheXpert-format dataset.")
    parser.add_argument("out", type=Path, help="the dataset folder to create")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    config = load_section(PhantomConfig, "phantoms", args.params)
    start = time.perf_counter()
    with atomic_dir(args.out) as tmp:
        summary = generate(config, tmp)
    seconds = time.perf_counter() - start
    n_images = sum(part["n_images"] for part in summary.values())
    print(f"phantoms: {n_images} images ({summary['train']['n_patients']} train patients, "
          f"{summary['valid']['n_patients']} valid patients) in {seconds:.1f} s "
          f"({n_images / seconds:.0f} images/s) -> {args.out}")


if __name__ == "__main__":
    run(main, "phantoms")
