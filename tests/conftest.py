"""Shared fixtures: small CheXpert-format tables and images written on the fly, and the project's settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from cxrssl.data.schema import CLASSES, COLUMNS
from cxrssl.params import from_dict, lookup, read_params

REPO = Path(__file__).resolve().parents[1]

DATA = Path(__file__).resolve().parent / "data"


def sample_file(*parts: str) -> Path:
    """A file of the real data samples in tests/data (see its README)."""
    path = DATA.joinpath(*parts)
    assert path.exists(), f"{path} is missing from the repository"
    return path


def params_section(section: str) -> dict:
    """``section`` (dotted: ``pretrain.common``) of the project's params.yaml, as a dict."""
    return dict(lookup(read_params(REPO / "params.yaml"), section, dict))


def settings(cls, section: str, **changes):
    """``section`` of the project's params.yaml read into ``cls`` (the only defaults there are), with ``changes``."""
    return dataclasses.replace(from_dict(cls, section, params_section(section)), **changes)


def merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged in: nested mappings merge, other values (and ``{}``) replace."""
    out = dict(base)
    for key, value in changes.items():
        nested = isinstance(value, dict) and value and isinstance(base.get(key), dict)
        out[key] = merged(base[key], value) if nested else value
    return out


def project_params(**changes) -> dict:
    """The project's params.yaml with ``changes`` (``section={...}``) merged in."""
    return merged(read_params(REPO / "params.yaml"), changes)


def make_row(patient: int, study: int, view: int = 1, lateral: bool = False, **labels) -> dict:
    kind = "lateral" if lateral else "frontal"
    row = {
        "Path": f"CheXpert-v1.0-small/train/patient{patient:05d}/study{study}/view{view}_{kind}.jpg",
        "Sex": "Female",
        "Age": 60,
        "Frontal/Lateral": "Lateral" if lateral else "Frontal",
        "AP/PA": "" if lateral else "AP",
    }
    row.update({c: "" for c in CLASSES})
    row.update({c.replace("_", " "): v for c, v in labels.items()})
    return row


def write_table(path: Path, rows: list[dict], columns=COLUMNS) -> Path:
    pd.DataFrame(rows).reindex(columns=list(columns)).to_csv(path, index=False)
    return path


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A CheXpert-small-like folder: 6 patients in train.csv, 2 in valid.csv, real JPEG files."""
    root = tmp_path / "CheXpert-v1.0-small"
    rng = np.random.default_rng(0)
    train = [
        make_row(p, s, Cardiomegaly="1.0" if p % 2 else "0.0", Edema="-1.0" if p == 3 else "")
        for p in range(1, 7)
        for s in (1, 2)
    ]
    valid = [make_row(p, 1, Cardiomegaly="1.0" if p == 7 else "0.0") for p in (7, 8)]
    for row in valid:
        row["Path"] = row["Path"].replace("/train/", "/valid/")
    for row in train + valid:
        file = root / Path(row["Path"]).relative_to("CheXpert-v1.0-small")
        file.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(file), rng.integers(0, 255, (80, 70), dtype=np.uint8))
    write_table(root / "train.csv", train)
    write_table(root / "valid.csv", valid)
    return root


def fit_killed_after(real_fit, epoch_index: int):
    """``cxrssl.train.fit`` that dies (KeyboardInterrupt) as epoch ``epoch_index`` ends, before its checkpoint."""

    def interrupted_fit(*args, **kwargs):
        original = kwargs["on_epoch_end"]

        def die(epoch):
            if epoch == epoch_index:
                raise KeyboardInterrupt
            return original(epoch)

        kwargs["on_epoch_end"] = die
        return real_fit(*args, **kwargs)

    return interrupted_fit


def live_log(folder: Path) -> dict[str, object]:
    """A DVCLive folder's contents without its wall-clock part (``perf/``): what must repeat on every rerun."""
    import json

    out: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_dir() or "/perf/" in f"/{name}":
            continue
        if name == "metrics.json":
            out[name] = _without_perf(json.loads(path.read_text()))
        else:
            out[name] = path.read_text()
    assert out, f"{folder}: no live log"
    return out


def _without_perf(summary):
    if not isinstance(summary, dict):
        return summary
    return {k: _without_perf(v) for k, v in summary.items() if k != "perf"}
