"""NIH ChestX-ray14 as a data source: label mapping, validation, and the pipeline on the 150 real images."""

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from cxrssl.data.chexpert import Report
from cxrssl.data.nih import NIH_CLASSES, map_labels, read_dataset, read_table
from cxrssl.data.schema import CLASSES, UNLABELLED
from cxrssl.data.splits import apply_policy
from cxrssl.errors import DataError
from tests.conftest import project_params, sample_file

SAMPLE = "Data_Entry_2017_subset.csv"
HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)


def label(row: np.ndarray, name: str) -> float:
    return row[CLASSES.index(name)]


def test_nih_findings_map_into_the_chexpert_space_and_the_rest_is_unlabelled():
    labels, unknown = map_labels(
        pd.Series(
            [
                "Atelectasis|Effusion|Infiltration",
                "No Finding",
                "Mass|Nodule|Hernia",
                "Fibrosis",
                "Effusion|Tumour",
                "No Finding|Edema",
            ]
        )
    )
    assert list(unknown) == [False, False, False, False, True, True]
    assert set(NIH_CLASSES) == {
        "No Finding",
        "Lung Lesion",
        "Edema",
        "Consolidation",
        "Pneumonia",
        "Atelectasis",
        "Pneumothorax",
        "Pleural Effusion",
        "Cardiomegaly",
    }
    first, clear, lesion, fibrosis = labels[:4]
    assert label(first, "Atelectasis") == label(first, "Pleural Effusion") == 1.0
    assert label(first, "No Finding") == label(first, "Cardiomegaly") == 0.0
    assert label(clear, "No Finding") == 1.0 and label(clear, "Edema") == 0.0
    assert label(lesion, "Lung Lesion") == 1.0 and label(lesion, "No Finding") == 0.0
    # a finding NIH has but CheXpert lacks: not "No Finding", and positive for nothing mapped
    assert all(label(fibrosis, c) == 0.0 for c in NIH_CLASSES)
    for row in labels[:4]:
        for name in ("Enlarged Cardiomediastinum", "Lung Opacity", "Pleural Other", "Fracture", "Support Devices"):
            assert label(row, name) == UNLABELLED
    for policy in ("zeros", "ones", "ignore"):  # missing, not negative, whatever the policy
        targets = apply_policy(labels[:4], policy)
        assert np.isnan(targets[:, CLASSES.index("Fracture")]).all()
        assert not np.isnan(targets[:, CLASSES.index("Edema")]).any()


def test_the_real_sample_table_reads_with_one_patient_per_image():
    table = sample_file("nih-cxr14-sample", SAMPLE)
    frame = read_table(table, Report())
    raw = pd.read_csv(table)
    assert len(frame) == len(raw) == 150
    assert frame["patient"].nunique() == 150 and frame["patient"].iloc[0] == "nih00000100"
    assert set(frame["Sex"]) <= {"Male", "Female"} and frame["Age"].between(0, 120).all()
    row = frame[frame["Path"] == "00000574_000.png"].iloc[0]
    assert row["Consolidation"] == row["Lung Lesion"] == row["Pneumothorax"] == 1.0 and row["Edema"] == 0.0
    effusion = raw["Finding Labels"].str.contains("Effusion")
    assert int((frame["Pleural Effusion"] == 1.0).sum()) == int(effusion.sum()) > 0


def write_table(folder, *rows):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "t.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    for row in rows:
        cv2.imwrite(str(folder / "images" / row.split(",")[0]), np.full((40, 40), 100, np.uint8))
    return folder


GOOD = "00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143"


@pytest.mark.parametrize(
    "row, message",
    [
        (
            "00000002_000.png,Cardiomegaly|Tumour,0,2,58,M,PA,1,1,1,1",
            "t.csv, line 3: Finding Labels 'Cardiomegaly|Tumour'",
        ),
        ("00000002_000.png,Edema,0,2,58,M,LL,1,1,1,1", "t.csv, line 3: View Position is 'LL'; expected PA or AP"),
        ("00000002_000.png,Edema,x,2,58,M,PA,1,1,1,1", "t.csv, line 3: Patient ID '2' / Follow-up # 'x'"),
        ("00000001_000.png,Edema,1,1,58,M,PA,1,1,1,1", "t.csv, line 3: Image Index '00000001_000.png' appears more"),
    ],
)
def test_a_bad_nih_row_is_one_error_naming_file_and_line(tmp_path, row, message):
    folder = write_table(tmp_path, GOOD, row)
    with pytest.raises(DataError, match="Set data.skip_invalid") as error:
        read_dataset(folder, "t.csv", None, Report())
    assert str(error.value).startswith(f"{folder / message}")
    report = Report(skip=True)  # the opt-in mode keeps the good row and lists the bad one
    assert list(read_dataset(folder, "t.csv", None, report)["Path"]) == ["00000001_000.png"]
    assert len(report.problems) == 1 and report.problems[0].line == 3


def test_missing_column_missing_image_and_missing_table_name_what_to_do(tmp_path):
    folder = write_table(tmp_path, GOOD, "00000002_000.png,No Finding,0,2,40,F,AP,1,1,1,1")
    (folder / "short.csv").write_text("Image Index,Finding Labels\n00000001_000.png,Edema\n")
    with pytest.raises(DataError, match=r"short.csv: missing column\(s\) 'Follow-up #', 'Patient ID'"):
        read_dataset(folder, "short.csv", None, Report())
    with pytest.raises(DataError, match="no such file .*Data_Entry_2017_v2020.csv"):
        read_dataset(folder, "Data_Entry_2017_v2020.csv", None, Report())
    (folder / "images/00000001_000.png").unlink()
    with pytest.raises(DataError, match=r"t.csv, line 2: image '00000001_000.png' is not in .*/images\*/"):
        read_dataset(folder, "t.csv", None, Report())
    (folder / "images/00000002_000.png").unlink()
    with pytest.raises(DataError, match=r"no images/ folder \(or images_NNN/images/\) with NIH's PNG files"):
        read_dataset(folder, "t.csv", None, Report())


def test_nih_test_list_and_the_release_folder_layout(tmp_path):
    folder = write_table(tmp_path, GOOD, "00000002_000.png,No Finding,0,2,40,F,AP,1,1,1,1")
    (folder / "images_002/images").mkdir(parents=True)  # the release unpacks into images_NNN/images/
    shutil.move(folder / "images/00000002_000.png", folder / "images_002/images/00000002_000.png")
    (folder / "test_list.txt").write_text("00000002_000.png\n")
    frame = read_dataset(folder, "t.csv", "test_list.txt", Report())
    assert dict(zip(frame["Path"], frame["origin"])) == {"00000001_000.png": "train", "00000002_000.png": "test"}
    assert frame["file"].iloc[1].endswith("images_002/images/00000002_000.png")
    (folder / "test_list.txt").write_text("99999999_000.png\n")
    with pytest.raises(DataError, match="none of the 1 images in .*test_list.txt is in"):
        read_dataset(folder, "t.csv", "test_list.txt", Report())


@pytest.fixture(scope="module")
def nih_run(tmp_path_factory):
    """preprocess -> split -> finetune@random-100 -> evaluate on the 150 real images, a few of them 1024 px RGBA."""
    from stages import baseline, evaluate, finetune, preprocess, split

    source = sample_file("nih-cxr14-sample")
    folder = tmp_path_factory.mktemp("nih")
    root = folder / "nih"
    shutil.copytree(source, root)
    for path in sorted((root / "images").glob("*.png"))[:5]:  # as the release has them: 1024 px, some RGBA
        gray = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (1024, 1024))
        cv2.imwrite(str(path), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA))
    params = project_params(
        data={"source": "nih", "root": str(root), "train_csv": SAMPLE, "test_csv": None, "skip_invalid": False},
        preprocess={"image_size": 32, "workers": 2},
        split={"seed": 0, "val_fraction": 0.2, "test_fraction": 0.3},
        label_percents=[100],
        inits=["random"],
        baselines=["random"],
        pretrain={"common": {"backbone": "resnet10"}},
        finetune={
            "linear_pcts": [],
            "epochs": 1,
            "min_steps": 2,
            "batch_size": 16,
            "evaluations": 1,
        },
        evaluate={"bootstrap": 20},
    )
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    p = ["--params", str(folder / "params.yaml")]
    f = folder
    preprocess.main([str(f / "store"), str(f / "preprocess.json"), *p])
    split.main([str(f / "store/index.csv"), str(f / "splits"), str(f / "split.json"), *p])
    baseline.main(["--init", "random", str(f / "random.pt"), *p])
    finetune.main(
        [
            "--cell",
            "random-100",
            str(f / "store"),
            str(f / "splits"),
            str(f / "random.pt"),
            str(f / "finetune/random-100"),
            str(f / "ft.json"),
            str(f / "ft.csv"),
            str(f / "live"),
            "--checkpoints",
            str(f / "ck"),
            *p,
        ]
    )
    evaluate.main(
        [
            str(f / "splits"),
            str(f / "finetune"),
            str(f / "evaluate.json"),
            str(f / "per_class.csv"),
            str(f / "plots"),
            *p,
        ]
    )
    return folder


@pytest.mark.slow
def test_the_pipeline_runs_on_real_nih_images_and_masks_what_nih_does_not_label(nih_run):
    assert json.loads((nih_run / "preprocess.json").read_text())["n_images"] == 150
    store = np.load(nih_run / "store/images.npy")
    assert store.shape == (150, 32, 32) and store.std() > 10  # real radiographs, the RGBA ones included
    regions = pd.read_csv(nih_run / "store/regions.csv")  # NIH has no boxes here: gradcam gets a header only
    assert regions.empty and list(regions.columns) == ["Path", "label", "x0", "y0", "x1", "y1"]
    splits = {name: pd.read_csv(nih_run / f"splits/{name}.csv") for name in ("train", "val", "test")}
    patients = [set(s["patient"]) for s in splits.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    for frame in splits.values():
        for name in CLASSES:
            assert frame[name].isna().all() == (name not in NIH_CLASSES), name
    cell = json.loads((nih_run / "evaluate.json").read_text())["random"]["100"]
    per_class = pd.read_csv(nih_run / "per_class.csv").set_index("class")
    for name in CLASSES:
        if name not in NIH_CLASSES:
            assert per_class.loc[name, "note"].startswith(f"no test image has a {name} label")
            assert np.isnan(per_class.loc[name, "auroc"])
    assert cell["classes"] <= len(NIH_CLASSES) and cell["test_images"] == len(splits["test"])
