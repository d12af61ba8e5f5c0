from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrssl.data.chexpert import Report, read_dataset, read_table, resolve_image
from cxrssl.data.schema import CLASSES, COLUMNS
from cxrssl.errors import DataError
from tests.conftest import make_row, sample_file, write_table


def test_reads_a_valid_table(tmp_path):
    rows = [
        make_row(1, 1, Edema="1.0", Cardiomegaly="-1.0"),
        make_row(1, 1, view=2, lateral=True),
        make_row(2, 3, Edema="0.0"),
    ]
    table = read_table(write_table(tmp_path / "t.csv", rows), Report())
    assert list(table["patient"]) == ["patient00001", "patient00001", "patient00002"]
    assert list(table["study"]) == ["patient00001/study1", "patient00001/study1", "patient00002/study3"]
    assert table.loc[0, "Edema"] == 1.0 and table.loc[0, "Cardiomegaly"] == -1.0
    assert np.isnan(table.loc[1, "Edema"]) and table.loc[2, "Edema"] == 0.0
    assert list(table["line"]) == [2, 3, 4]


def test_reads_the_real_label_table_quickly():
    table = read_table(sample_file("chexpert", "train_labels.csv.gz"), Report())
    assert len(table) == 223_414
    assert table["patient"].nunique() == 64_540
    assert table["study"].nunique() == 187_641


@pytest.mark.parametrize("column", ["Path", "Edema", "Frontal/Lateral"])
def test_missing_column_names_file_and_column(tmp_path, column):
    path = write_table(tmp_path / "t.csv", [make_row(1, 1)], [c for c in COLUMNS if c != column])
    with pytest.raises(DataError, match=rf"t\.csv: missing column\(s\) '{column}'"):
        read_table(path, Report())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"Edema": "2.0"}, r"line 3: unknown label value Edema='2.0'"),
        ({"Edema": "yes"}, r"line 3: unknown label value Edema='yes'"),
        ({"Path": "somewhere/image.jpg"}, r"line 3: Path 'somewhere/image.jpg' does not look like"),
        ({"Frontal/Lateral": "Oblique"}, r"line 3: Frontal/Lateral is 'Oblique'"),
        ({"AP/PA": "XX"}, r"line 3: AP/PA is 'XX'"),
        ({"Sex": "M"}, r"line 3: Sex is 'M'"),
        ({"Age": "old"}, r"line 3: Age is 'old'"),
    ],
)
def test_bad_values_name_file_line_and_value(tmp_path, change, message):
    bad = make_row(2, 1)
    bad.update(change)
    path = write_table(tmp_path / "t.csv", [make_row(1, 1), bad, make_row(3, 1)])
    with pytest.raises(DataError, match=message):
        read_table(path, Report())


def test_duplicate_paths_are_refused(tmp_path):
    path = write_table(tmp_path / "t.csv", [make_row(1, 1), make_row(2, 1), make_row(1, 1)])
    with pytest.raises(
        DataError,
        match=r"line 4: Path '.*patient00001/study1/view1_frontal.jpg' names a file "
        r"listed before it",
    ):
        read_table(path, Report())


@pytest.mark.parametrize(
    "spelling",
    [
        "CheXpert-v1.0-small/train/./patient00001/study1/view1_frontal.jpg",
        "CheXpert-v1.0-small/train//patient00001/study1/view1_frontal.jpg",
        "train/patient00001/study1/view1_frontal.jpg",
    ],
)
def test_one_file_under_another_spelling_is_a_duplicate(tmp_path, spelling):
    other = make_row(1, 1)
    other["Path"] = spelling
    path = write_table(tmp_path / "t.csv", [make_row(1, 1), other])
    with pytest.raises(DataError, match=r"line 3: .* names a file listed before it"):
        read_table(path, Report())


@pytest.mark.parametrize(
    "escape",
    [
        "CheXpert-v1.0-small/train/../../../outside/patient00001/study1/view1_frontal.jpg",
        "/etc/patient00001/study1/view1_frontal.jpg",
        "CheXpert-v1.0-small/train/..\\..\\patient00001/study1/view1_frontal.jpg",
    ],
)
def test_a_path_that_leaves_the_dataset_is_refused_or_skipped(tmp_path, escape):
    bad = make_row(2, 1)
    bad["Path"] = escape
    path = write_table(tmp_path / "t.csv", [make_row(1, 1), bad])
    with pytest.raises(DataError, match=r"line 3: Path .* inside the dataset"):
        read_table(path, Report())
    report = Report(skip=True)
    assert len(read_table(path, report)) == 1 and report.problems[0].line == 3
    with pytest.raises(DataError, match="leaves the dataset folder"):
        resolve_image(tmp_path, escape)


def test_table_structure_problems_name_the_file_and_line(tmp_path):
    good = write_table(tmp_path / "good.csv", [make_row(1, 1), make_row(2, 1)])
    lines = good.read_text().splitlines()
    (tmp_path / "dup.csv").write_text("\n".join([lines[0].replace("Edema", "Cardiomegaly"), *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=r"dup\.csv, line 1: the column 'Cardiomegaly' appears more than once"):
        read_table(tmp_path / "dup.csv", Report())
    (tmp_path / "short.csv").write_text("\n".join([lines[0], lines[1].rsplit(",", 3)[0], lines[2]]) + "\n")
    with pytest.raises(DataError, match=r"short\.csv, line 2: 16 fields where the header has 19"):
        read_table(tmp_path / "short.csv", Report())
    report = Report(skip=True)
    assert list(read_table(tmp_path / "short.csv", report)["line"]) == [3] and report.problems[0].line == 2
    (tmp_path / "latin1.csv").write_bytes(("\n".join(lines) + "\n").encode() + "Zürich".encode("latin-1") + b"\n")
    with pytest.raises(DataError, match=r"latin1\.csv, line 4: not UTF-8 text \(byte 0xfc\)"):
        read_table(tmp_path / "latin1.csv", Report())


def test_a_table_with_only_its_header_is_an_error(tiny_dataset):
    header = (tiny_dataset / "train.csv").read_text().splitlines()[0]
    (tiny_dataset / "train.csv").write_text(header + "\n")
    with pytest.raises(DataError, match=r"data\.train_csv: .*train\.csv: no valid rows"):
        read_dataset(tiny_dataset, "train.csv", "valid.csv", Report())


def test_a_table_over_the_byte_limit_is_refused_before_it_is_read(tmp_path):
    path = write_table(tmp_path / "t.csv", [make_row(1, 1)])
    with pytest.raises(DataError, match=r"t\.csv: .* bytes, more than the 10 allowed"):
        read_table(path, Report(max_bytes=10))


def test_skip_mode_drops_and_reports_bad_rows(tmp_path):
    rows = [make_row(1, 1), make_row(2, 1, Edema="7"), make_row(3, 1), make_row(3, 1)]
    report = Report(skip=True)
    table = read_table(write_table(tmp_path / "t.csv", rows), report)
    assert list(table["patient"]) == ["patient00001", "patient00003"]
    assert [p.line for p in report.problems] == [3, 5]
    assert report.as_dict()["n_skipped"] == 2


def test_many_errors_are_counted_in_one_message(tmp_path):
    rows = [make_row(i, 1, Edema="5") for i in range(1, 5)]
    with pytest.raises(DataError, match=r"line 2: .*and 3 more problem"):
        read_table(write_table(tmp_path / "t.csv", rows), Report())


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        read_table(tmp_path / "nope.csv", Report())
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: empty file"):
        read_table(tmp_path / "empty.csv", Report())
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(DataError, match=r"bin\.csv"):
        read_table(tmp_path / "bin.csv", Report())


def test_resolve_image_replaces_the_dataset_folder_name(tmp_path):
    path = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"
    assert (
        resolve_image(tmp_path / "local-copy", path)
        == tmp_path / "local-copy" / "train/patient00001/study1/view1_frontal.jpg"
    )
    assert (
        resolve_image(tmp_path, "valid/patient1/study1/view1_frontal.jpg")
        == tmp_path / "valid/patient1/study1/view1_frontal.jpg"
    )


def test_read_dataset_marks_origin_and_refuses_paths_in_both_tables(tiny_dataset):
    frame = read_dataset(tiny_dataset, "train.csv", "valid.csv", Report())
    assert frame["origin"].value_counts().to_dict() == {"train": 12, "test": 2}
    assert all(Path(f).is_file() for f in frame["file"])

    valid = pd.read_csv(tiny_dataset / "valid.csv")
    train = pd.read_csv(tiny_dataset / "train.csv")
    pd.concat([valid, train.iloc[:1]]).to_csv(tiny_dataset / "valid.csv", index=False)
    with pytest.raises(DataError, match=r"valid\.csv, line 4: Path .* is also in train\.csv"):
        read_dataset(tiny_dataset, "train.csv", "valid.csv", Report())


def test_read_dataset_needs_a_folder(tmp_path):
    with pytest.raises(DataError, match="data.root: .* is not a folder"):
        read_dataset(tmp_path / "missing", "train.csv", None, Report())


def test_labels_keep_chexpert_order():
    assert CLASSES[0] == "No Finding" and CLASSES[-1] == "Support Devices" and len(CLASSES) == 14


def test_short_rows_are_refused_and_lines_stay_true_across_blank_lines(tmp_path):
    path = write_table(tmp_path / "t.csv", [make_row(1, 1), make_row(2, 1), make_row(3, 1)])
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 2)[0]  # drop the last two fields of line 3
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"t\.csv, line 3: 17 fields where the header has 19"):
        read_table(path, Report())
    bad = make_row(3, 1, Edema="2.0")
    path = write_table(tmp_path / "u.csv", [make_row(1, 1), make_row(2, 1), bad])
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["", ""] + lines[2:]) + "\n")  # two blank lines before line 3
    with pytest.raises(DataError, match=r"u\.csv, line 6: unknown label value Edema='2.0'"):
        read_table(path, Report())


def test_gzip_and_bom_are_read(tmp_path):
    import gzip

    path = write_table(tmp_path / "t.csv", [make_row(1, 1, Edema="1")])
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(path.read_bytes()))
    for name in ("bom.csv", "t.csv.gz"):
        assert read_table(tmp_path / name, Report()).loc[0, "Edema"] == 1.0


def test_missing_table_names_its_key(tiny_dataset):
    with pytest.raises(DataError, match=r"data\.test_csv: .*nope\.csv: no such file"):
        read_dataset(tiny_dataset, "train.csv", "nope.csv", Report())
