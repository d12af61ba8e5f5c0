"""predict: a classifier from the study applied to image files, with the model's own preprocessing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import asdict
from importlib.metadata import entry_points
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from cxrssl.data.images import PreprocessConfig, load_and_preprocess
from cxrssl.data.schema import CLASSES
from cxrssl.errors import DataError, ParamError
from cxrssl.finetune import Classifier, predict
from cxrssl.localisation import slug
from cxrssl.models import build_backbone
from cxrssl.predict import CALL_COLUMNS, PROB_COLUMNS, main

NIH = Path(__file__).parent / "data/nih-cxr14-sample/images"
CPU = torch.device("cpu")


def preprocessing(**changes) -> PreprocessConfig:
    values = dict(
        image_size=32,
        denoise="none",
        median_ksize=3,
        bilateral_sigma=25.0,
        nlm_h=5.0,
        clahe=True,
        clahe_clip_limit=2.0,
        clahe_tile_grid=4,
        workers=0,
        max_file_bytes=1 << 28,
        max_image_pixels=10**8,
    )
    return PreprocessConfig(**{**values, **changes})


def write_model(path: Path, preprocess: PreprocessConfig | None, source: str = "nih") -> Classifier:
    """A classifier file as a finetune stage writes it (random weights), recording ``preprocess``."""
    torch.manual_seed(0)
    backbone, dim = build_backbone("resnet10")
    model = Classifier(backbone, dim).eval()
    state = {
        "init": "simclr",
        "pct": 10,
        "protocol": "full",
        "seed": 0,
        "backbone_name": "resnet10",
        "feature_dim": dim,
        "image_size": 32,
        "classes": list(CLASSES),
        "model": model.state_dict(),
        "config": {},
        "data": {"source": source},
    }
    if preprocess is not None:
        state["preprocess"] = asdict(preprocess)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return model


def thresholds_table(path: Path, thresholds: dict[str, float]) -> Path:
    pd.DataFrame(
        [{"init": "simclr", "pct": 10, "class": c, "threshold": t} for c, t in thresholds.items()]
        + [{"init": "random", "pct": 10, "class": "Edema", "threshold": 0.0}]
    ).to_csv(path, index=False)
    return path


def test_every_image_is_a_row_with_the_models_preprocessing_and_a_bad_file_is_an_error_row(tmp_path, capsys):
    folder = tmp_path / "scans"
    (folder / "nested").mkdir(parents=True)
    good = sorted(NIH.glob("*.png"))[:3]
    shutil.copy(good[0], folder)
    shutil.copy(good[1], folder / "nested")
    shutil.copy(good[2], tmp_path / "single.png")
    (folder / "broken.png").write_bytes(good[0].read_bytes()[:200])
    (folder / "notes.txt").write_text("not an image")
    preprocess = preprocessing()
    model = write_model(tmp_path / "model.pt", preprocess)
    table = thresholds_table(tmp_path / "per_class.csv", {"Edema": 0.5, "Cardiomegaly": 0.0})

    main(
        [str(tmp_path / "model.pt"), str(folder), str(tmp_path / "single.png"), "--out", str(tmp_path / "p.csv")]
        + ["--thresholds", str(table)]
    )

    frame = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert list(frame.columns) == ["path", *PROB_COLUMNS, *CALL_COLUMNS, "error"]
    paths = [folder / good[0].name, folder / "broken.png", folder / "nested" / good[1].name, tmp_path / "single.png"]
    assert frame["path"].tolist() == [str(p) for p in paths]
    read = frame.index != 1
    assert "broken.png" in frame.loc[1, "error"] and frame.loc[1, "prob:Edema"] == ""
    assert (frame.loc[read, "error"] == "").all()
    # the model's own preprocessing (32 px with CLAHE), not anything else
    images = np.stack([load_and_preprocess(p, preprocess) for p in paths if p.name != "broken.png"])
    expected = predict(model, torch.from_numpy(images), CPU, False)
    assert np.allclose(frame.loc[read, PROB_COLUMNS].to_numpy(dtype=float), expected, atol=1e-6)
    probs = frame.loc[read, "prob:Edema"].to_numpy(dtype=float)
    assert frame.loc[read, "call:Edema"].astype(int).tolist() == (probs >= 0.5).astype(int).tolist()
    assert (frame.loc[read, "call:Cardiomegaly"].astype(int) == 1).all()
    assert (frame["call:Atelectasis"] == "").all()  # no threshold known for it
    assert "3 images scored, 1 not read" in capsys.readouterr().out


def test_other_preprocessing_gives_other_probabilities(tmp_path):
    image = sorted(NIH.glob("*.png"))[0]
    out = {}
    for name, preprocess in {"clahe": preprocessing(), "plain": preprocessing(clahe=False)}.items():
        write_model(tmp_path / f"{name}.pt", preprocess)
        main(
            [str(tmp_path / f"{name}.pt"), str(image), "--out", str(tmp_path / f"{name}.csv")]
            + ["--thresholds", str(tmp_path / "none.csv")]
        )
        out[name] = pd.read_csv(tmp_path / f"{name}.csv")[PROB_COLUMNS].to_numpy()
    assert not np.allclose(out["clahe"], out["plain"])


def test_a_phantom_trained_model_warns_and_a_model_without_preprocessing_is_refused(tmp_path, capsys):
    image = str(sorted(NIH.glob("*.png"))[0])
    write_model(tmp_path / "phantom.pt", preprocessing(), source="phantoms")
    main([str(tmp_path / "phantom.pt"), image, "--out", str(tmp_path / "p.csv")])
    assert "trained on generated phantoms" in capsys.readouterr().err
    write_model(tmp_path / "old.pt", None)
    with pytest.raises(DataError, match="old.pt: records no preprocessing"):
        main([str(tmp_path / "old.pt"), image, "--out", str(tmp_path / "q.csv")])
    assert not (tmp_path / "q.csv").exists()


def test_a_cell_name_finds_its_seed_and_a_missing_input_is_named(tmp_path):
    image = str(sorted(NIH.glob("*.png"))[0])
    write_model(tmp_path / "finetune/simclr-10/model-seed3.pt", preprocessing())
    args = ["--finetune", str(tmp_path / "finetune"), "--out", str(tmp_path / "p.csv")]
    main(["simclr-10", image, *args])
    assert len(pd.read_csv(tmp_path / "p.csv")) == 1
    with pytest.raises(ParamError, match="no model for seed 0; it has seeds \\[3\\]"):
        main(["simclr-10", image, *args, "--seed", "0"])
    with pytest.raises(DataError, match="nowhere.png: no such file or folder"):
        main(["simclr-10", str(tmp_path / "nowhere.png"), *args])


def test_the_command_reports_a_bad_model_in_one_line_and_is_installed_as_a_console_script(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    image = str(sorted(NIH.glob("*.png"))[0])
    result = subprocess.run(
        [sys.executable, "-m", "cxrssl.predict", str(tmp_path / "junk.pt"), image, "--out", str(tmp_path / "p.csv")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and not (tmp_path / "p.csv").exists()
    assert result.stderr.startswith("error: predict: ") and "junk.pt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    scripts = entry_points(group="console_scripts", name="cxrssl-predict")
    assert [script.value for script in scripts] == ["cxrssl.predict:cli"]


def test_cam_writes_a_map_per_image_and_finding_and_refuses_unknown_names(tmp_path):
    images = sorted(NIH.glob("*.png"))[:3]
    write_model(tmp_path / "model.pt", preprocessing())
    base = [str(tmp_path / "model.pt"), *map(str, images), "--out", str(tmp_path / "p.csv")]
    main([*base, "--cam", str(tmp_path / "top")])
    frame = pd.read_csv(tmp_path / "p.csv")
    written = sorted(p.name for p in (tmp_path / "top").iterdir())
    likeliest = [
        max((c for c in CLASSES if c != "No Finding"), key=lambda c: row[f"prob:{c}"]) for _, row in frame.iterrows()
    ]
    expected = [f"{row}-{p.stem}-{slug(c)}.png" for row, (p, c) in enumerate(zip(images, likeliest, strict=True))]
    assert written == sorted(expected)
    picture = cv2.imread(str(tmp_path / "top" / written[0]))
    assert picture.shape[1] == 2 * 4 * 32  # the radiograph and its map, side by side, at 4x

    main([*base, "--cam", str(tmp_path / "named"), "--findings", "Edema", "Cardiomegaly", "--cam-method", "gradcam"])
    assert len(list((tmp_path / "named").glob("*-edema.png"))) == len(list((tmp_path / "named").iterdir())) / 2 == 3
    with pytest.raises(ParamError, match="--findings 'Oedema'"):
        main([*base, "--cam", str(tmp_path / "bad"), "--findings", "Oedema"])
    with pytest.raises(ParamError, match="--cam-layer 'layer9'"):
        main([*base, "--cam", str(tmp_path / "bad"), "--cam-layer", "layer9"])
    assert not (tmp_path / "bad").exists()


def test_an_nih_table_gives_its_labels_and_the_auroc_of_each_class_it_labels(tmp_path, capsys):
    from sklearn.metrics import roc_auc_score

    table = NIH.parent / "Data_Entry_2017_subset.csv"
    write_model(tmp_path / "model.pt", preprocessing())
    main([str(tmp_path / "model.pt"), str(table), "--out", str(tmp_path / "p.csv")])
    frame = pd.read_csv(tmp_path / "p.csv")
    listed = pd.read_csv(table)
    assert len(frame) == len(listed) and (frame["error"].isna()).all()
    assert [Path(p).name for p in frame["path"]] == listed["Image Index"].tolist()
    # NIH's "Effusion" is CheXpert's Pleural Effusion; CheXpert classes NIH does not label stay empty
    effusion = listed["Finding Labels"].str.contains("Effusion").astype(float).to_numpy()
    assert np.array_equal(frame["label:Pleural Effusion"].to_numpy(), effusion)
    assert frame["label:Fracture"].isna().all()
    expected = roc_auc_score(effusion, frame["prob:Pleural Effusion"])
    out = capsys.readouterr().out
    assert f"Pleural Effusion {expected:.3f}" in out and "Fracture" not in out.split("AUROC")[-1]


def test_a_chexpert_table_of_dicom_files_reads_each_and_reports_a_missing_one(tmp_path):
    from tests.test_dicom import dicom

    root = tmp_path / "CheXpert-v1.0-small"
    pixels = cv2.imread(str(sorted(NIH.glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE)
    study = root / "valid/patient00001/study1"
    study.mkdir(parents=True)
    # an 8-bit DICOM whose window (0..255) displays its stored values unchanged
    dicom(pixels, WindowCenter=128, WindowWidth=256).save_as(study / "view1_frontal.dcm", enforce_file_format=True)
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CLASSES)
    rows = [
        f"CheXpert-v1.0-small/valid/patient00001/study1/view1_frontal.dcm,Female,60,Frontal,PA,{',' * 13}1.0",
        f"CheXpert-v1.0-small/valid/patient00002/study1/view1_frontal.dcm,Male,50,Frontal,PA,{',' * 13}-1.0",
    ]
    (root / "valid.csv").write_text("\n".join([header, *rows]) + "\n")
    preprocess = preprocessing()
    write_model(tmp_path / "model.pt", preprocess)
    main([str(tmp_path / "model.pt"), str(root / "valid.csv"), "--out", str(tmp_path / "p.csv")])
    frame = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert frame.loc[0, "error"] == "" and "no such image file" in frame.loc[1, "error"]
    assert frame.loc[0, "label:Support Devices"] == "1.0" and frame.loc[1, "label:Support Devices"] == ""  # U-Ignore
    # the DICOM file reaches the model as the PNG it was made from does
    assert np.array_equal(
        load_and_preprocess(study / "view1_frontal.dcm", preprocess),
        load_and_preprocess(sorted(NIH.glob("*.png"))[0], preprocess),
    )


def test_a_folder_finds_dicom_without_an_extension_and_a_table_without_readable_rows_is_named(tmp_path, capsys):
    from tests.test_dicom import STORED, dicom

    folder = tmp_path / "export"
    folder.mkdir()
    dicom(STORED).save_as(folder / "1.2.840.1", enforce_file_format=True)  # as a PACS export names files
    (folder / "README").write_text("not an image")
    write_model(tmp_path / "model.pt", preprocessing())
    main([str(tmp_path / "model.pt"), str(folder), "--out", str(tmp_path / "p.csv")])
    frame = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert frame["path"].tolist() == [str(folder / "1.2.840.1")] and frame.loc[0, "error"] == ""

    table = tmp_path / "valid.csv"
    table.write_text(
        "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CLASSES) + "\nnot/a/path.jpg,X,1,Up,PA" + "," * 14
    )
    with pytest.raises(DataError) as error:
        main([str(tmp_path / "model.pt"), str(table), "--out", str(tmp_path / "q.csv")])
    assert str(error.value).startswith(f"{table}: no valid rows") and not (tmp_path / "q.csv").exists()
    assert "warning: skipped" in capsys.readouterr().err  # the row's reason comes before the error
