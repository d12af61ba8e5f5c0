"""Stage ``baseline@<init>``: the initial backbones that are not pretrained here.

    python -m stages.baseline random models/pretrain/random.pt
    python -m stages.baseline imagenet models/pretrain/imagenet.pt

``random`` is the backbone's random initialisation (seeded); ``imagenet`` is
torchvision's ImageNet weights, which must already be in torch's cache (they
cannot be downloaded here). Both are written in the format of the pretrain
stages, so that every ``finetune@<init>-<pct>`` reads its start the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cxrssl.initial import BASELINES, baseline_backbone
from cxrssl.io import atomic_file
from cxrssl.params import from_dict, read_params
from cxrssl.pretraining import PretrainConfig
from stages._cli import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write an initial backbone that is not pretrained here.")
    parser.add_argument("init", help=f"one of {', '.join(BASELINES)}")
    parser.add_argument("out", type=Path, help="where to write the backbone (.pt)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    pretrain = read_params(args.params).get("pretrain") or {}
    common = from_dict(PretrainConfig, "pretrain.common", pretrain.get("common"))
    backbone, dim, source = baseline_backbone(args.init, common.backbone, common.seed)
    state = {"method": args.init, "backbone_name": common.backbone, "feature_dim": dim,
             "backbone": backbone.state_dict(), "config": {"seed": common.seed, "source": source}}
    with atomic_file(args.out, "wb") as handle:
        torch.save(state, handle)
    print(f"baseline@{args.init}: {common.backbone} ({source}) -> {args.out}")


if __name__ == "__main__":
    run(main, "baseline")
