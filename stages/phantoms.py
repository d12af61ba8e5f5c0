"""Stage ``phantoms``: generate the embedded default dataset in CheXpert's format.

    python -m stages.phantoms data/phantoms/CheXpert-v1.0-small.zip

An output ending in ``.zip`` is written as a zip archive laid out like
CheXpert's download (the pipeline's default; ``unzip`` it to look at the
images); any other output is written as the folder tree itself.
"""

from __future__ import annotations

import time

from cxrssl.cli import run, stage_parser
from cxrssl.io import atomic_dir, atomic_file
from cxrssl.params import load_section
from cxrssl.phantoms.dataset import PhantomConfig, generate


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(
        "Generate the phantom CheXpert-format dataset.",
        {
            "out": "the dataset to create: a .zip archive or a folder",
        },
    )
    args = parser.parse_args(argv)
    config = load_section(PhantomConfig, "phantoms", args.params)
    start = time.perf_counter()
    into_zip = args.out.suffix.lower() == ".zip"  # an existing folder of that name is an error, not replaced
    with atomic_file(args.out, "wb") if into_zip else atomic_dir(args.out) as tmp:
        summary = generate(config, tmp)
    seconds = time.perf_counter() - start
    n_images = sum(part["n_images"] for part in summary.values())
    print(
        f"phantoms: {n_images} images ({summary['train']['n_patients']} train patients, "
        f"{summary['valid']['n_patients']} valid patients) in {seconds:.1f} s "
        f"({n_images / seconds:.0f} images/s) -> {args.out}"
    )


if __name__ == "__main__":
    run(main, "phantoms")
