"""Stage ``baseline@<init>``: the initial backbones that are not pretrained here.

    python -m stages.baseline models/pretrain/{init}.pt

The init (``random`` or ``imagenet``) comes from DVC (``DVC_STAGE``) or
``--init random``; ``{init}`` in the path is filled in with it. ``random``
is the backbone's random initialisation (seeded); ``imagenet`` is
torchvision's ImageNet weights, which must already be in torch's cache (they
cannot be downloaded here). Both are written in the format of the pretrain
stages, so that every ``finetune@<init>-<pct>`` reads its start the same way.
Reads ``pretrain.common.backbone`` and ``pretrain.common.seed`` only.
"""

from __future__ import annotations

import torch

from cxrssl.cli import check_name, fill, run, stage_item, stage_parser
from cxrssl.initial import BASELINES, baseline_backbone
from cxrssl.io import atomic_file
from cxrssl.models import BACKBONES
from cxrssl.params import lookup, read_params, require


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(
        "Write an initial backbone that is not pretrained here.",
        {
            "out": "where to write the backbone (.pt)",
        },
    )
    parser.add_argument("--init", help=f"one of {', '.join(BASELINES)} (default: from DVC's DVC_STAGE)")
    args = parser.parse_args(argv)
    init = check_name("baselines", stage_item("baseline", args.init))
    out = fill(args.out, init=init)
    params = read_params(args.params)
    backbone_name = lookup(params, "pretrain.common.backbone", str)
    seed = lookup(params, "pretrain.common.seed", int)
    require(backbone_name in BACKBONES, "pretrain.common.backbone", backbone_name, f"one of {', '.join(BACKBONES)}")
    require(seed >= 0, "pretrain.common.seed", seed, "a non-negative integer")
    backbone, dim, source = baseline_backbone(init, backbone_name, seed)
    state = {
        "method": init,
        "backbone_name": backbone_name,
        "feature_dim": dim,
        "backbone": backbone.state_dict(),
        "config": {"seed": seed, "source": source},
    }
    with atomic_file(out, "wb") as handle:
        torch.save(state, handle)
    print(f"baseline@{init}: {backbone_name} ({source}) -> {out}")


if __name__ == "__main__":
    run(main, "baseline")
