"""Stage ``report``: gather the study's results into ``results/``, the folder git keeps.

    python -m stages.report metrics plots results

Reads the stages' own (DVC-cached) outputs under ``metrics/`` and ``plots/``
and writes ``results/``: ``headline.json`` (macro AUROC per init and label
percent, val and test, and the gain over random), ``evaluate.json``,
``cross_dataset.json``, ``gradcam.json``, ``stages.json`` (each stage's
figures of merit), ``evaluate_per_class.csv``, the figures, and
``report.html``: all of it in one self-contained page (figures inlined, no
script, nothing fetched), to open offline or mail. See :mod:`cxrssl.report`.
"""

from __future__ import annotations

from cxrssl.cli import check_name, run, stage_parser
from cxrssl.params import check_list, lookup, read_params
from cxrssl.report import gather


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(
        "Gather the study's results into one folder.",
        {
            "metrics": "the stages' metrics folder",
            "plots": "the stages' plots folder",
            "out": "the results folder to write",
        },
    )
    args = parser.parse_args(argv)
    params = read_params(args.params)
    methods = [check_name("methods", m) for m in check_list("methods", params.get("methods"), str)]
    inits = [check_name("inits", i) for i in check_list("inits", params.get("inits"), str)]
    percents = check_list("label_percents", params.get("label_percents"), int)
    # what the page names besides the matrix: dvc.yaml declares each of them for this stage
    settings = {
        "data.source": lookup(params, "data.source", str),
        "evaluate.bootstrap": lookup(params, "evaluate.bootstrap", int),
        "evaluate.confidence": lookup(params, "evaluate.confidence", float),
        "gradcam.pct": lookup(params, "gradcam.pct", int),
        "gradcam.method": lookup(params, "gradcam.method", str),
    }
    top = gather(args.metrics, args.plots, args.out, methods, inits, percents, settings)
    for init in inits:
        cells = "  ".join(
            f"{p}%: val {_number(top['val'][init][str(p)])} test {_number(top['test'][init][str(p)])}"
            + (
                f" ({top['test_gain'][init][str(p)]:+.3f})"
                if init in top.get("test_gain", {}) and top["test_gain"][init][str(p)] is not None
                else ""
            )
            for p in percents
        )
        print(f"report: {init:>8}  {cells}")
    print(f"report: wrote {args.out}/")


def _number(value: float | None) -> str:
    return "null" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    run(main, "report")
