"""Initial backbones: weight files are read without unpickling code."""

import os

import pytest
import torch

from cxrssl.errors import DataError
from cxrssl.finetune import load_classifier
from cxrssl.initial import load_initial
from cxrssl.models import build_backbone


class Payload:
    """What a hostile .pt carries: unpickling it runs a command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_weight_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    backbone, dim = build_backbone("resnet10")
    marker = tmp_path / "ran"
    path = tmp_path / "simclr.pt"
    torch.save(
        {
            "method": "simclr",
            "backbone_name": "resnet10",
            "feature_dim": dim,
            "backbone": backbone.state_dict(),
            "extra": Payload(marker),
        },
        path,
    )
    for load in (load_initial, load_classifier):
        with pytest.raises(DataError, match=rf"{path}: not a readable .* file .*without unpickling code"):
            load(path)
    assert not marker.exists()


def test_the_projects_own_files_load_and_a_foreign_one_is_named(tmp_path):
    backbone, dim = build_backbone("resnet10")
    torch.save(
        {
            "method": "random",
            "backbone_name": "resnet10",
            "feature_dim": dim,
            "backbone": backbone.state_dict(),
            "config": {"seed": 0, "source": "x"},
        },
        tmp_path / "ok.pt",
    )
    assert load_initial(tmp_path / "ok.pt")[1] == dim
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(DataError, match=r"list\.pt: not a backbone file \(it holds a list"):
        load_initial(tmp_path / "list.pt")
    (tmp_path / "garbage.pt").write_bytes(os.urandom(256))
    with pytest.raises(DataError, match=r"garbage\.pt: not a readable backbone file"):
        load_initial(tmp_path / "garbage.pt")
