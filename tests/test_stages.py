"""The stages end to end on a tiny configuration, and how they fail."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cxrssl.data.schema import CLASSES, COLUMNS
from cxrssl.data.store import ImageStore
from stages import phantoms, preprocess, split
from tests.conftest import live_log, merged, project_params

pytestmark = pytest.mark.slow  # stages end to end, or processes spawned: make test-quick skips them

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "data": {
        "source": "phantoms",
        "root": "ds/CheXpert-v1.0-small",
        "train_csv": "train.csv",
        "test_csv": "valid.csv",
        "skip_invalid": False,
    },
    "phantoms": {"n_patients": 30, "n_valid_patients": 8, "height": 96, "width": 80, "seed": 3, "workers": 2},
    "preprocess": {"image_size": 32, "workers": 2},
    "split": {"seed": 0, "val_fraction": 0.2, "uncertainty": "ignore"},
    "label_percents": [10, 100],
}


def write_params(folder: Path, **changes) -> Path:
    params = project_params(**TINY)
    for key, value in changes.items():
        section, name = key.split("__")
        params[section][name] = value
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """phantoms -> preprocess -> split in a temporary folder."""
    folder = tmp_path_factory.mktemp("pipeline")
    params = write_params(folder)
    phantoms.main([str(folder / "ds/CheXpert-v1.0-small"), "--params", str(params)])
    params.write_text(params.read_text().replace("root: ds/", f"root: {folder}/ds/"))
    preprocess.main([str(folder / "store"), str(folder / "metrics/preprocess.json"), "--params", str(params)])
    split.main(
        [
            str(folder / "store/index.csv"),
            str(folder / "splits"),
            str(folder / "metrics/split.json"),
            "--params",
            str(params),
        ]
    )
    return folder


def test_phantoms_are_a_chexpert_tree(pipeline):
    root = pipeline / "ds/CheXpert-v1.0-small"
    for name in ("train.csv", "valid.csv", "regions.csv"):
        assert (root / name).is_file()
    train = pd.read_csv(root / "train.csv")
    assert list(train.columns) == list(COLUMNS)
    assert all((root / Path(p).relative_to("CheXpert-v1.0-small")).is_file() for p in train["Path"])
    regions = pd.read_csv(root / "regions.csv")
    assert set(regions["label"]) <= set(CLASSES)
    assert regions[["x0", "y0", "x1", "y1"]].stack().between(0, 1).all()


def test_phantoms_are_deterministic(pipeline, tmp_path):
    params = write_params(tmp_path)
    phantoms.main([str(tmp_path / "again"), "--params", str(params)])
    first, second = pipeline / "ds/CheXpert-v1.0-small", tmp_path / "again"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


def zipped_phantoms(folder: Path) -> Path:
    """The tiny phantom dataset written as a zip archive, as the pipeline writes it."""
    out = folder / "CheXpert-v1.0-small.zip"
    phantoms.main([str(out), "--params", str(write_params(folder))])
    return out


def test_phantoms_zip_is_the_same_tree_laid_out_as_chexpert_ships_it(pipeline, tmp_path):
    import zipfile

    archive = zipped_phantoms(tmp_path)
    folder = pipeline / "ds/CheXpert-v1.0-small"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive) as handle:
        assert sorted(handle.namelist()) == [f"CheXpert-v1.0-small/{f}" for f in files]
        assert all(handle.read(f"CheXpert-v1.0-small/{f}") == (folder / f).read_bytes() for f in files)
        assert {i.compress_type for i in handle.infolist()} == {zipfile.ZIP_STORED}
    again = tmp_path / "again"
    again.mkdir()
    assert zipped_phantoms(again).read_bytes() == archive.read_bytes()  # the same draw, the same bytes


def test_preprocess_reads_the_zip_in_place_and_stores_the_same_images(pipeline, tmp_path):
    archive = zipped_phantoms(tmp_path)
    params = write_params(tmp_path, data__root=str(archive))
    preprocess.main([str(tmp_path / "store"), str(tmp_path / "m.json"), "--params", str(params)])
    for name in ("images.npy", "index.csv", "regions.csv"):
        assert (tmp_path / "store" / name).read_bytes() == (pipeline / "store" / name).read_bytes()


def test_a_bad_archive_is_one_clear_error_and_no_store(pipeline, tmp_path):
    import zipfile

    archive = zipped_phantoms(tmp_path)
    with zipfile.ZipFile(archive) as handle:
        member = "CheXpert-v1.0-small/" + pd.read_csv(handle.open("CheXpert-v1.0-small/train.csv"))["Path"][
            3
        ].removeprefix("CheXpert-v1.0-small/")
        jpeg = handle.read(member)
    raw = archive.read_bytes()
    at = raw.index(jpeg) + len(jpeg) // 2
    archive.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])  # one byte of one image damaged

    def preprocess_error(root) -> str:
        params = write_params(tmp_path, data__root=str(root))
        result = run_stage(
            ["stages.preprocess", str(tmp_path / "store"), str(tmp_path / "m.json"), "--params", str(params)], tmp_path
        )
        assert result.returncode == 1
        assert not (tmp_path / "store").exists() and not (tmp_path / "m.json").exists()
        return result.stderr

    stderr = preprocess_error(archive)
    assert f"{archive}::{member}: cannot read image (damaged or unreadable archive member (Bad CRC-32" in stderr
    assert f"(listed in {archive}::CheXpert-v1.0-small/train.csv, line 5)" in stderr

    with zipfile.ZipFile(archive) as handle, zipfile.ZipFile(tmp_path / "no-valid.zip", "w") as out:
        for info in handle.infolist():
            if not info.filename.endswith("valid.csv"):
                out.writestr(info, handle.read(info.filename) if info.filename != member else b"")
    stderr = preprocess_error(tmp_path / "no-valid.zip")
    assert stderr.strip().endswith(
        f"data.test_csv: {tmp_path}/no-valid.zip::CheXpert-v1.0-small/valid.csv: no such file"
    )

    with (
        zipfile.ZipFile(zipped_phantoms(tmp_path)) as handle,
        zipfile.ZipFile(tmp_path / "deflated.zip", "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for info in handle.infolist():  # downloads are deflated; damage one image's stream
            data = handle.read(info.filename)
            out.writestr(
                info.filename,
                data[:200] + bytes(4000) + data[200:] if info.filename == member else data,
                zipfile.ZIP_DEFLATED,
            )
    raw = bytearray((tmp_path / "deflated.zip").read_bytes())
    with zipfile.ZipFile(tmp_path / "deflated.zip") as handle:
        info = handle.getinfo(member)
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra)] ^= 0xFF
    (tmp_path / "deflated.zip").write_bytes(bytes(raw))
    stderr = preprocess_error(tmp_path / "deflated.zip")
    assert f"deflated.zip::{member}: cannot read image (damaged or unreadable archive member (" in stderr
    assert "Traceback" not in stderr and sum(line.startswith("error:") for line in stderr.splitlines()) == 1

    with zipfile.ZipFile(zipped_phantoms(tmp_path)) as handle:
        regions = handle.read("CheXpert-v1.0-small/regions.csv")
    raw = zipped_phantoms(tmp_path).read_bytes()
    at = raw.index(regions) + 40
    (tmp_path / "CheXpert-v1.0-small.zip").write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])
    assert (
        preprocess_error(tmp_path / "CheXpert-v1.0-small.zip")
        .strip()
        .endswith(
            f"{tmp_path}/CheXpert-v1.0-small.zip::CheXpert-v1.0-small/regions.csv: cannot read it (damaged or "
            "unreadable archive member (Bad CRC-32 for file 'CheXpert-v1.0-small/regions.csv'))"
        )
    )

    (tmp_path / "not.zip").write_bytes(b"this is not an archive")
    assert (
        preprocess_error(tmp_path / "not.zip")
        .strip()
        .endswith(f"{tmp_path}/not.zip: not a readable zip archive (File is not a zip file)")
    )


def test_store_holds_every_image_once(pipeline):
    store = ImageStore(pipeline / "store")
    n_rows = sum(len(pd.read_csv(pipeline / "ds/CheXpert-v1.0-small" / n)) for n in ("train.csv", "valid.csv"))
    assert store.images.shape == (n_rows, 32, 32) and store.images.dtype == np.uint8
    assert len(store.index) == n_rows and store.index["row"].is_unique
    assert store.images[:].std() > 10
    metrics = json.loads((pipeline / "metrics/preprocess.json").read_text())
    assert metrics["n_images"] == n_rows and metrics["n_images_skipped"] == 0
    # the phantoms' ground-truth boxes travel with the store, so gradcam need not track the dataset folder
    regions = (pipeline / "ds/CheXpert-v1.0-small/regions.csv").read_bytes()
    assert (pipeline / "store/regions.csv").read_bytes() == regions and len(regions.splitlines()) > 1


def test_splits_follow_the_contract(pipeline):
    frames = {name: pd.read_csv(pipeline / f"splits/{name}.csv") for name in ("train", "val", "test")}
    for frame in frames.values():
        assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
        assert {"patient", "study", "row"} <= set(frame.columns)
        assert (frame["Frontal/Lateral"] == "Frontal").all()
    assert "min_fraction" in frames["train"]
    assert frames["test"]["Path"].str.contains("/valid/").all()
    patients = [set(f["patient"]) for f in frames.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    metrics = json.loads((pipeline / "metrics/split.json").read_text())
    assert metrics["train"]["n_images"] == len(frames["train"])
    assert set(metrics["label_fractions"]) == {"10", "100"}


def run_stage(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_bad_parameter_is_one_clear_error_and_no_output(pipeline, tmp_path):
    params = write_params(tmp_path, split__uncertainty="maybe")
    result = run_stage(
        [
            "stages.split",
            str(pipeline / "store/index.csv"),
            str(tmp_path / "splits"),
            str(tmp_path / "split.json"),
            "--params",
            str(params),
        ],
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: split: params: split.uncertainty is 'maybe'; expected one of zeros, ones, ignore"
    )
    assert not (tmp_path / "splits").exists() and not (tmp_path / "split.json").exists()


def _half_with_end_marker(data: bytes) -> bytes:
    return data[: len(data) // 2] + b"\xff\xd9"


def _huge_png(data: bytes) -> bytes:
    import cv2

    png = bytearray(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes())
    png[16:24] = (40000).to_bytes(4, "big") + (30000).to_bytes(4, "big")
    return bytes(png)


def _float_tiff(data: bytes) -> bytes:
    import cv2

    return cv2.imencode(".tiff", np.random.default_rng(0).random((20, 20)).astype(np.float32))[1].tobytes()


HOSTILE = {  # what the file becomes -> the message
    "cut short": (lambda data: data[:100], "truncated or corrupt JPEG"),
    "cut, end marker appended": (_half_with_end_marker, "truncated or corrupt JPEG"),
    "a gigapixel header": (_huge_png, "the header declares 40000 x 30000 = 1,200,000,000 pixels"),
    "a float TIFF": (_float_tiff, "a TIFF file, not a JPEG, PNG or DICOM image"),
    "over the byte limit": (lambda data: data + bytes(300_000), "more than the 200,000 allowed"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_bad_image_stops_preprocess_naming_it_or_is_skipped(pipeline, tmp_path, case):
    import shutil

    change, message = HOSTILE[case]
    root = tmp_path / "CheXpert-v1.0-small"
    shutil.copytree(pipeline / "ds/CheXpert-v1.0-small", root)
    csv_path = pd.read_csv(root / "train.csv")["Path"][3]
    victim = root / Path(csv_path).relative_to("CheXpert-v1.0-small")
    victim.write_bytes(change(victim.read_bytes()))
    params = write_params(tmp_path, data__root=str(root), preprocess__max_file_bytes=200_000)
    result = run_stage(
        ["stages.preprocess", str(tmp_path / "store"), str(tmp_path / "m.json"), "--params", str(params)], tmp_path
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith(f"error: preprocess: {victim}: ") and message in errors[0]
    assert f"(listed in {root / 'train.csv'}, line 5)" in errors[0]
    assert not (tmp_path / "store").exists() and not (tmp_path / "m.json").exists()
    assert not list(tmp_path.glob(".store*"))

    params = write_params(tmp_path, data__root=str(root), data__skip_invalid=True, preprocess__max_file_bytes=200_000)
    preprocess.main([str(tmp_path / "store"), str(tmp_path / "m.json"), "--params", str(params)])
    report = json.loads((tmp_path / "store/report.json").read_text())
    assert report["n_skipped"] == 1 and message in report["examples"][0]
    assert report["examples"][0].endswith(f"(listed in {root / 'train.csv'}, line 5)")
    assert csv_path not in set(ImageStore(tmp_path / "store").index["Path"])


def test_preprocess_on_a_full_disk_is_one_clear_error_and_leaves_nothing(pipeline, tmp_path):
    import resource
    import signal

    def full_disk():  # no file may grow past 60 kB: the tables fit, the store does not
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    params = write_params(tmp_path, data__root=str(pipeline / "ds/CheXpert-v1.0-small"), preprocess__image_size=64)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.preprocess",
            str(tmp_path / "store"),
            str(tmp_path / "m.json"),
            "--params",
            str(params),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        preexec_fn=full_disk,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: preprocess: {tmp_path / 'store'}: cannot write it (File too large); the previous output, if any, "
        "is left as it was"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


STUDY = {
    "pretrain": {
        "common": {"backbone": "resnet10", "epochs": 1, "batch_size": 8, "probe_images": 16},
        "simclr": {"hidden_dim": 32, "dim": 16},
    },
    "baselines": ["random"],
    "inits": ["random", "simclr"],
    "finetune": {
        "linear_pcts": [10],
        "epochs": 2,
        "min_steps": 2,
        "linear_epochs": 2,
        "linear_min_steps": 2,
        "batch_size": 8,
        "evaluations": 2,
    },
    "evaluate": {"bootstrap": 20},
}


@pytest.fixture(scope="module")
def study(pipeline):
    """pretrain@simclr, baseline@random, finetune@{random,simclr}-{10,100} and evaluate on the tiny pipeline."""
    from stages import baseline, evaluate, finetune, pretrain

    params = pipeline / "params.yaml"
    params.write_text(yaml.safe_dump(merged(yaml.safe_load(params.read_text()), STUDY)))
    p = ["--params", str(params)]
    f = pipeline
    pretrain.main(
        [
            "--method",
            "simclr",
            str(f / "store"),
            str(f / "splits/pretrain.csv"),
            str(f / "models/simclr.pt"),
            str(f / "metrics/pretrain/simclr.json"),
            str(f / "plots/pretrain/simclr.csv"),
            str(f / "live/pretrain/simclr"),
            "--checkpoints",
            str(f / "checkpoints"),
            *p,
        ]
    )
    baseline.main(["--init", "random", str(f / "models/random.pt"), *p])
    for init in ("random", "simclr"):
        for pct in (10, 100):
            cell = f"{init}-{pct}"
            finetune.main(
                [
                    "--cell",
                    cell,
                    str(f / "store"),
                    str(f / "splits"),
                    str(f / f"models/{init}.pt"),
                    str(f / f"finetune/{cell}"),
                    str(f / f"metrics/finetune/{cell}.json"),
                    str(f / f"plots/finetune/{cell}.csv"),
                    str(f / f"live/finetune/{cell}"),
                    "--checkpoints",
                    str(f / "checkpoints"),
                    *p,
                ]
            )
    evaluate.main(
        [
            str(f / "splits"),
            str(f / "finetune"),
            str(f / "metrics/evaluate.json"),
            str(f / "metrics/evaluate_per_class.csv"),
            str(f / "plots/evaluate"),
            *p,
        ]
    )
    return f


def test_training_stages_write_a_live_log_of_steps_and_epochs(study):
    pretrain = json.loads((study / "live/pretrain/simclr/metrics.json").read_text())
    assert set(pretrain) == {"train", "epoch", "perf", "step"}
    assert set(pretrain["epoch"]) == {"epoch", "loss", "lr", "embedding_std"}
    history = pd.read_csv(study / "plots/pretrain/simclr.csv")  # the stage's per-epoch record
    assert pretrain["epoch"]["epoch"] == len(history) and pretrain["epoch"]["loss"] == history["loss"].iloc[-1]
    steps = pd.read_csv(study / "live/pretrain/simclr/plots/metrics/train/loss.tsv", sep="\t")
    assert steps["step"].is_monotonic_increasing and steps["step"].iloc[-1] == pretrain["step"]
    finetune = json.loads((study / "live/finetune/random-100/metrics.json").read_text())
    assert "val_auroc_macro" in finetune["seed0"]["epoch"] and "images_per_s" in finetune["seed0"]["perf"]
    curve = pd.read_csv(study / "live/finetune/random-100/plots/metrics/seed0/epoch/val_auroc_macro.tsv", sep="\t")
    record = pd.read_csv(study / "plots/finetune/random-100.csv").dropna(subset=["val_auroc_macro"])
    assert np.allclose(curve["val_auroc_macro"], record["val_auroc_macro"])


def test_study_writes_what_the_design_promises(study):
    metrics = json.loads((study / "metrics/evaluate.json").read_text())
    assert set(metrics) == {"random", "simclr"}
    for init in metrics:
        assert set(metrics[init]) == {"10", "100"}
        for cell in metrics[init].values():
            for key in (
                "auroc_macro",
                "auroc_5",
                "ap_macro",
                "f1_macro",
                "kappa_macro",
                "val_auroc_macro",
                "val_auroc_5",
                "val_ap_macro",
            ):
                assert key in cell and f"{key}_low" in cell and f"{key}_high" in cell
            assert cell["val_images"] == len(pd.read_csv(study / "splits/val.csv"))
        # finetune.linear_pcts ran 10% with the frozen backbone, the rest end to end
        assert metrics[init]["10"]["protocol"] == "linear" and metrics[init]["100"]["protocol"] == "full"
        for pct, protocol in (("10", "linear"), ("100", "full")):
            assert json.loads((study / f"finetune/{init}-{pct}/cell.json").read_text()) == {
                "init": init,
                "pct": int(pct),
                "protocol": protocol,
            }
            assert json.loads((study / f"metrics/finetune/{init}-{pct}.json").read_text())["protocol"] == protocol
    per_class = pd.read_csv(study / "metrics/evaluate_per_class.csv")
    assert len(per_class) == 4 * len(CLASSES)
    assert set(zip(per_class["pct"], per_class["protocol"])) == {(10, "linear"), (100, "full")}
    assert {"val_auroc", "val_auroc_low", "val_auroc_high", "val_ap"} <= set(per_class.columns)
    plots = study / "plots/evaluate"
    for name in ("label_efficiency.csv", "label_efficiency_val.csv"):
        efficiency = pd.read_csv(plots / "curves" / name)
        assert list(efficiency["pct"]) == [10, 100] and {"random", "simclr", "simclr_low"} <= set(efficiency.columns)
    for folder in ("roc", "pr"):
        assert sorted(p.name for p in (plots / "curves" / folder).iterdir()) == [
            "random-10.csv",
            "random-100.csv",
            "simclr-10.csv",
            "simclr-100.csv",
        ]
    assert (plots / "label_efficiency.png").read_bytes()[:4] == b"\x89PNG"
    predictions = pd.read_csv(study / "finetune/simclr-10/predictions.csv")
    assert set(predictions["split"]) == {"val", "test"}
    assert (study / "finetune/simclr-10/model-seed0.pt").is_file()
    assert not list((study / "checkpoints").iterdir())


def test_finetune_starts_from_the_named_backbone_and_never_reads_test_labels(study, tmp_path):
    import shutil

    import torch

    from stages import finetune

    state = torch.load(study / "finetune/simclr-100/model-seed0.pt", weights_only=True)
    assert state["init"] == "simclr" and state["pct"] == 100 and state["backbone_name"] == "resnet10"
    report = json.loads((study / "store/report.json").read_text())  # what predict prepares new images with
    assert state["preprocess"] == report["preprocess"] and state["data"] == report["data"]
    shutil.copytree(study / "splits", tmp_path / "splits")
    test = pd.read_csv(tmp_path / "splits/test.csv")
    test.drop(columns=list(CLASSES)).to_csv(tmp_path / "splits/test.csv", index=False)  # no test labels at all
    finetune.main(
        [
            "--cell",
            "random-10",
            str(study / "store"),
            str(tmp_path / "splits"),
            str(study / "models/random.pt"),
            str(tmp_path / "out"),
            str(tmp_path / "m.json"),
            str(tmp_path / "p.csv"),
            str(tmp_path / "live"),
            "--params",
            str(study / "params.yaml"),
            "--checkpoints",
            str(tmp_path / "ck"),
        ]
    )
    again = pd.read_csv(tmp_path / "out/predictions.csv")
    first = pd.read_csv(study / "finetune/random-10/predictions.csv")
    pd.testing.assert_frame_equal(again, first)  # the same model and predictions as with labels present


def test_missing_initial_backbone_is_one_clear_error(study, tmp_path):
    result = run_stage(
        [
            "stages.finetune",
            "--cell",
            "moco-10",
            str(study / "store"),
            str(study / "splits"),
            str(tmp_path / "moco.pt"),
            str(tmp_path / "out"),
            str(tmp_path / "m.json"),
            str(tmp_path / "p.csv"),
            str(tmp_path / "live"),
            "--params",
            str(study / "params.yaml"),
        ],
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        f"{tmp_path / 'moco.pt'}: missing; run the stage that writes it (pretrain@<method> or baseline@<init>)"
    )
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.json").exists()


def test_imagenet_init_without_cached_weights_says_how_to_provide_them(study, tmp_path):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["pretrain"]["common"]["backbone"] = "resnet18"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [sys.executable, "-m", "stages.baseline", "--init", "imagenet", str(tmp_path / "imagenet.pt")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "TORCH_HOME": str(tmp_path)},
    )
    assert result.returncode == 1
    assert "ImageNet weights for resnet18 are not at" in result.stderr
    assert "download https://download.pytorch.org/models/resnet18" in result.stderr
    assert not (tmp_path / "imagenet.pt").exists()


def test_evaluate_names_a_missing_cell(study, tmp_path):
    import shutil

    shutil.copytree(study / "finetune", tmp_path / "finetune")
    shutil.rmtree(tmp_path / "finetune/simclr-10")
    result = run_stage(
        [
            "stages.evaluate",
            str(study / "splits"),
            str(tmp_path / "finetune"),
            str(tmp_path / "e.json"),
            str(tmp_path / "pc.csv"),
            str(tmp_path / "plots"),
            "--params",
            str(study / "params.yaml"),
        ],
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        f"{tmp_path / 'finetune/simclr-10/predictions.csv'}: missing; run finetune@simclr-10 first"
    )
    assert not (tmp_path / "e.json").exists() and not (tmp_path / "plots").exists()


def test_gradcam_scores_every_init_on_the_regions(study, tmp_path):
    from stages import gradcam

    params = yaml.safe_load((study / "params.yaml").read_text())
    params = merged(params, {"gradcam": {"pct": 100, "per_class": 1}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    gradcam.main(
        [
            str(study / "store"),
            str(study / "splits"),
            str(study / "finetune"),
            str(tmp_path / "g.json"),
            str(tmp_path / "plots"),
            str(tmp_path / "grid.jpg"),
            "--params",
            str(tmp_path / "params.yaml"),
        ]
    )
    metrics = json.loads((tmp_path / "g.json").read_text())
    assert set(metrics) == {"random", "simclr", "center_prior"}
    regions = pd.read_csv(study / "ds/CheXpert-v1.0-small/regions.csv")
    test = pd.read_csv(study / "splits/test.csv")
    for name, cell in metrics["center_prior"].items():  # n: positive test images with the region drawn
        drawn = set(regions.loc[regions["label"] == name, "Path"])
        assert cell["n"] == int(test.loc[test[name] == 1, "Path"].isin(drawn).sum()) > 0
        assert 0 <= cell["pointing_game"] <= 1 and 0 <= cell["energy_inside"] <= 1
        assert metrics["simclr"][name]["n"] == cell["n"]
        for init in metrics:  # the Wilson 95% interval, from its formula
            p, n = metrics[init][name]["pointing_game"], cell["n"]
            z = 1.959964
            centre, half = (
                (p + z * z / (2 * n)) / (1 + z * z / n),
                z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)),
            )
            assert metrics[init][name]["pointing_game_low"] == pytest.approx(centre - half, abs=1e-4)
            assert metrics[init][name]["pointing_game_high"] == pytest.approx(centre + half, abs=1e-4)
    overlays = sorted(p.name for p in (tmp_path / "plots/simclr").iterdir())
    assert overlays and overlays == sorted(p.name for p in (tmp_path / "plots/random").iterdir())
    assert (tmp_path / "grid.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_gradcam_needs_a_trained_label_percent(study, tmp_path):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params = merged(params, {"gradcam": {"pct": 50}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage(
        [
            "stages.gradcam",
            str(study / "store"),
            str(study / "splits"),
            str(study / "finetune"),
            str(tmp_path / "g.json"),
            str(tmp_path / "plots"),
            str(tmp_path / "grid.jpg"),
            "--params",
            str(tmp_path / "params.yaml"),
        ],
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith("params: gradcam.pct is 50; expected one of label_percents [10, 100]")
    assert not (tmp_path / "g.json").exists() and not (tmp_path / "plots").exists()


def test_cross_dataset_scores_the_phantom_models_on_real_nih_images(study, tmp_path):
    from stages import evaluate
    from tests.conftest import sample_file

    nih = sample_file("nih-cxr14-sample")
    params = yaml.safe_load((study / "params.yaml").read_text())
    params = merged(
        params,
        {
            "evaluate": {
                "bootstrap": 20,
                "cross_dataset": {
                    "source": "nih",
                    "root": str(nih),
                    "train_csv": "Data_Entry_2017_subset.csv",
                    "test_csv": None,
                    "skip_invalid": False,
                },
            }
        },
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    evaluate.main(
        [
            str(study / "splits"),
            str(study / "finetune"),
            str(tmp_path / "e.json"),
            str(tmp_path / "pc.csv"),
            str(tmp_path / "plots"),
            "--cross-dataset-metrics",
            str(tmp_path / "x.json"),
            "--params",
            str(tmp_path / "params.yaml"),
        ]
    )
    crossed = json.loads((tmp_path / "x.json").read_text())
    assert crossed["dataset"]["source"] == "nih" and crossed["dataset"]["test_images"] == 150
    assert crossed["dataset"]["n_skipped"] == 0
    assert set(crossed["dataset"]["labelled_classes"]) <= set(CLASSES) - {"Fracture", "Support Devices"}
    for init in ("random", "simclr"):
        for pct in ("10", "100"):
            cell = crossed[init][pct]
            assert 1 <= cell["classes"] <= 9 and cell["test_images"] == 150
            assert 0 <= cell["auroc_macro"] <= 1
    # the study's own metrics are untouched by the extra evaluation
    assert json.loads((tmp_path / "e.json").read_text()) == json.loads((study / "metrics/evaluate.json").read_text())


def test_cross_dataset_parameter_errors_name_their_key(study, tmp_path):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params = merged(
        params,
        {
            "evaluate": {
                "bootstrap": 20,
                "cross_dataset": {
                    "source": "mimic",
                    "root": "x",
                    "train_csv": "a.csv",
                    "test_csv": None,
                    "skip_invalid": False,
                },
            }
        },
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage(
        [
            "stages.evaluate",
            str(study / "splits"),
            str(study / "finetune"),
            str(tmp_path / "e.json"),
            str(tmp_path / "pc.csv"),
            str(tmp_path / "plots"),
            "--cross-dataset-metrics",
            str(tmp_path / "x.json"),
            "--params",
            str(tmp_path / "params.yaml"),
        ],
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "params: evaluate.cross_dataset.source is 'mimic'; expected one of phantoms, chexpert, nih"
    )
    assert not (tmp_path / "e.json").exists() and not (tmp_path / "x.json").exists()


def test_a_killed_pretrain_resumes_and_ends_with_the_same_weights(pipeline, tmp_path):
    import time

    import torch

    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    params = merged(
        params,
        {
            "pretrain": {
                "common": {"backbone": "resnet10", "epochs": 8, "batch_size": 8, "probe_images": 16},
                "simclr": {"hidden_dim": 32, "dim": 16},
            }
        },
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def command(name):
        return [
            sys.executable,
            "-m",
            "stages.pretrain",
            "--method",
            "simclr",
            str(pipeline / "store"),
            str(pipeline / "splits/pretrain.csv"),
            str(tmp_path / f"{name}.pt"),
            str(tmp_path / f"{name}.json"),
            str(tmp_path / f"{name}.csv"),
            str(tmp_path / f"live-{name}"),
            "--checkpoints",
            str(tmp_path / f"ck-{name}"),
            "--params",
            str(tmp_path / "params.yaml"),
        ]

    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    assert subprocess.run(command("straight"), cwd=tmp_path, env=env, capture_output=True).returncode == 0
    checkpoint = tmp_path / "ck-killed/pretrain-simclr.ckpt"
    process = subprocess.Popen(
        command("killed"), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while not checkpoint.exists() and process.poll() is None:
        time.sleep(0.01)
    process.kill()  # SIGKILL: no handler runs, as when a machine dies
    process.wait()
    assert not (tmp_path / "killed.pt").exists(), "the run ended before it could be killed"
    again = subprocess.run(command("killed"), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "resuming after epoch" in again.stdout
    straight = torch.load(tmp_path / "straight.pt", weights_only=True)
    resumed = torch.load(tmp_path / "killed.pt", weights_only=True)
    for name, value in straight["backbone"].items():
        torch.testing.assert_close(resumed["backbone"][name], value, rtol=0, atol=0, msg=name)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in straight["history"]]
    assert not checkpoint.exists()  # removed once the stage is done
    # the live log is whole: the rows before the kill come back from the checkpoint
    assert live_log(tmp_path / "live-killed") == live_log(tmp_path / "live-straight")


def test_training_stages_run_under_torchrun_when_params_ask_for_it(pipeline, tmp_path):
    """distributed.nproc_per_node: 2 relaunches pretrain and finetune under torchrun (gloo); rank 0 writes."""
    import torch

    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    params = merged(
        params,
        {
            "pretrain": {
                "common": {"backbone": "resnet10", "epochs": 1, "batch_size": 8, "probe_images": 16},
                "simclr": {"hidden_dim": 32, "dim": 16},
            },
            "finetune": {
                "linear_pcts": [],
                "epochs": 1,
                "min_steps": 0,
                "batch_size": 9,
                "evaluations": 1,
            },
            "distributed": {"nproc_per_node": 2},
        },
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    p = ["--params", str(tmp_path / "params.yaml"), "--checkpoints", str(tmp_path / "ck")]

    def pretrain_simclr(name: str) -> subprocess.CompletedProcess:
        outs = [str(tmp_path / f"{name}.{ext}") for ext in ("pt", "json", "csv", "live")]
        command = ["-m", "stages.pretrain", "--method", "simclr", str(pipeline / "store")]
        return subprocess.run(
            [sys.executable, *command, str(pipeline / "splits/pretrain.csv"), *outs, *p],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )

    pretrain = pretrain_simclr("simclr")
    assert pretrain.returncode == 0, pretrain.stderr[-3000:]
    assert "relaunching under torchrun with 2 processes" in pretrain.stdout
    assert pretrain.stdout.count("x 2 processes") == 1  # rank 0 alone reports
    assert torch.load(tmp_path / "simclr.pt", weights_only=True)["method"] == "simclr"
    finetune = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.finetune",
            "--cell",
            "simclr-100",
            str(pipeline / "store"),
            str(pipeline / "splits"),
            str(tmp_path / "simclr.pt"),
            str(tmp_path / "cell"),
            str(tmp_path / "cell.json"),
            str(tmp_path / "cell.csv"),
            str(tmp_path / "cell-live"),
            *p,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert finetune.returncode == 0, finetune.stderr[-3000:]
    predictions = pd.read_csv(tmp_path / "cell/predictions.csv")
    test = pd.read_csv(pipeline / "splits/test.csv")
    assert (predictions.loc[predictions["split"] == "test", "row"].to_numpy() == test["row"].to_numpy()).all()
    assert json.loads((tmp_path / "cell.json").read_text())["protocol"] == "full"
    assert not list((tmp_path / "ck").glob("*"))

    params["pretrain"]["common"]["batch_size"] = 7  # not a multiple of the 2 processes: one clear error
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    bad = pretrain_simclr("bad")
    assert bad.returncode != 0 and not (tmp_path / "bad.pt").exists()
    assert "error: pretrain: pretrain.common.batch_size 7 does not split evenly across 2 processes" in bad.stderr
