"""DICOM radiographs: the pixels that reach the model, for each way a DX/CR file stores them."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

from cxrssl.data.dicom import decode_dicom
from cxrssl.data.images import preprocess
from cxrssl.errors import DataError
from cxrssl.finetune import predict
from cxrssl.predict import PROB_COLUMNS, main
from tests.test_predict import preprocessing, write_model

RNG = np.random.default_rng(0)
STORED = RNG.integers(0, 4096, size=(48, 40), dtype=np.uint16)  # 12 bits stored in 16


def dicom(pixels: np.ndarray, interpretation: str = "MONOCHROME2", **elements) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = interpretation
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, 8 if bits == 8 else 12, 7 if bits == 8 else 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    for key, value in elements.items():
        setattr(ds, key, value)
    return ds


def decoded(ds: Dataset, tmp_path: Path, max_pixels: int = 10**8) -> np.ndarray:
    path = tmp_path / "image.dcm"
    ds.save_as(path, enforce_file_format=True)
    return decode_dicom(path, path.read_bytes(), max_pixels)


def window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM's linear VOI function (PS3.3 C.11.2.1.2) onto 0..255, written out."""
    y = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.round(np.clip(y, 0, 255)).astype(np.uint8)


def test_rescale_then_window_then_monochrome1_inverted(tmp_path):
    elements = dict(RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=2000, WindowWidth=3000)
    expected = window(STORED.astype(float) * 2 - 1024, 2000, 3000)
    assert np.array_equal(decoded(dicom(STORED, **elements), tmp_path), expected)
    assert np.array_equal(decoded(dicom(STORED, "MONOCHROME1", **elements), tmp_path), 255 - expected)


def test_without_a_window_the_used_range_is_stretched_and_8_bit_works(tmp_path):
    image = decoded(dicom(STORED), tmp_path)
    order = np.argsort(STORED, axis=None)
    assert image.min() == 0 and image.max() == 255
    assert (np.diff(image.ravel()[order].astype(int)) >= 0).all()  # monotonic in the stored value
    eight = RNG.integers(0, 256, size=(30, 20), dtype=np.uint8)
    lo, hi = np.percentile(eight, (0.5, 99.5))
    expected = np.round(np.clip((eight - lo) * 255 / (hi - lo), 0, 255)).astype(np.uint8)
    assert np.array_equal(decoded(dicom(eight), tmp_path), expected)


def test_a_voi_lut_is_applied(tmp_path):
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 12]  # 4,096 entries from stored value 0, 12-bit output
    table = np.round(np.sqrt(np.arange(4096) / 4095) * 4095).astype(np.uint16)  # not linear
    lut.LUTData = table.astype("<u2").tobytes()
    ds = dicom(STORED)
    ds.VOILUTSequence = [lut]
    expected = np.round(table[STORED].astype(float) * 255 / 4095).astype(np.uint8)
    assert np.array_equal(decoded(ds, tmp_path), expected)


def test_rle_lossless_gives_the_uncompressed_pixels(tmp_path):
    ds = dicom(STORED, WindowCenter=2048, WindowWidth=4096)
    ds.compress(RLELossless, STORED)
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    assert np.array_equal(decoded(ds, tmp_path), window(STORED.astype(float), 2048, 4096))


def test_what_is_refused_is_one_error_naming_the_file(tmp_path):
    with pytest.raises(DataError, match=r"image.dcm: the DICOM header declares 40 x 48 = 1,920 pixels, more than"):
        decoded(dicom(STORED), tmp_path, max_pixels=1000)
    with pytest.raises(DataError, match="a RGB DICOM image, not a grayscale radiograph"):
        decoded(dicom(STORED, "RGB"), tmp_path)
    with pytest.raises(DataError, match="multi-frame"):
        decoded(dicom(STORED, NumberOfFrames=2), tmp_path)
    lossless = dicom(STORED)
    lossless.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    lossless.PixelData = encapsulate([b"\xff\xd8 not really a JPEG \xff\xd9"])
    with pytest.raises(DataError, match=r"image.dcm: cannot decode the DICOM pixel data \(JPEG Lossless"):
        decoded(lossless, tmp_path)
    short = dicom(STORED)
    short.PixelData = STORED.tobytes()[:100]
    with pytest.raises(DataError, match="image.dcm: cannot decode the DICOM pixel data"):
        decoded(short, tmp_path)
    (tmp_path / "fake.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1\2\3")
    with pytest.raises(DataError, match="fake.dcm: not a readable DICOM"):
        decode_dicom(tmp_path / "fake.dcm", (tmp_path / "fake.dcm").read_bytes(), 10**8)


@pytest.mark.parametrize(
    ("elements", "patch", "message"),
    [
        ({"NumberOfFrames": 987654321}, (b"987654321 ", b"ab!!!!!!! "), "a DICOM attribute that cannot be used"),
        (
            {"WindowCenter": "1234567", "WindowWidth": 400},
            (b"1234567 ", b"level!! "),
            "a DICOM attribute that cannot be used",
        ),
        ({"WindowCenter": 100, "WindowWidth": 0}, None, "DICOM Window Width 0; it must be at least 1"),
        (
            {"RescaleSlope": "7654321", "RescaleIntercept": 0},
            (b"7654321 ", b"steep!! "),
            "a DICOM attribute that cannot be used",
        ),
    ],
)
def test_an_attribute_that_cannot_be_used_is_an_error_naming_the_file(tmp_path, elements, patch, message):
    dicom(STORED, **elements).save_as(tmp_path / "odd.dcm", enforce_file_format=True)
    data = (tmp_path / "odd.dcm").read_bytes()
    if patch is not None:  # a value no valid writer makes, as a careless one would write it
        # odd-length values are padded with a space, which no UID holds: the pattern is found once
        assert data.count(patch[0]) == 1
        data = data.replace(*patch)
    with pytest.raises(DataError, match=f"odd.dcm: {message}"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom warns of the invalid value as it reads it
        decode_dicom(tmp_path / "odd.dcm", data, 10**8)


def test_a_deflated_file_is_refused_before_it_is_inflated(tmp_path):
    ds = dicom(STORED)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    with pytest.raises(DataError, match=r"deflated.dcm: a deflated DICOM file .* is not read"):
        decode_dicom(tmp_path / "deflated.dcm", (tmp_path / "deflated.dcm").read_bytes(), 10**8)


def test_predict_reads_dicom_beside_png_and_reports_a_bad_one(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    elements = dict(RescaleSlope=1, RescaleIntercept=0, WindowCenter=2048, WindowWidth=4096)
    dicom(STORED, "MONOCHROME1", **elements).save_as(folder / "a.dcm", enforce_file_format=True)
    (folder / "b.dcm").write_bytes((folder / "a.dcm").read_bytes()[:2000])  # pixel data cut short
    config = preprocessing()
    model = write_model(tmp_path / "model.pt", config)
    main([str(tmp_path / "model.pt"), str(folder), "--out", str(tmp_path / "p.csv")])
    frame = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert frame["path"].tolist() == [str(folder / "a.dcm"), str(folder / "b.dcm")]
    image = preprocess(255 - window(STORED.astype(float), 2048, 4096), config)  # what the model must see
    expected = predict(model, torch.from_numpy(image[None]), torch.device("cpu"), False)
    assert np.allclose(frame.loc[[0], PROB_COLUMNS].to_numpy(dtype=float), expected, atol=1e-6)
    assert frame.loc[0, "error"] == "" and "b.dcm: cannot decode the DICOM pixel data" in frame.loc[1, "error"]


def test_jpeg_baseline_decodes_as_the_jpeg_itself(tmp_path):
    eight = cv2.GaussianBlur(RNG.integers(0, 256, size=(48, 40), dtype=np.uint8), (5, 5), 0)
    ok, jpeg = cv2.imencode(".jpg", eight, [cv2.IMWRITE_JPEG_QUALITY, 90])
    ds = dicom(eight, WindowCenter=128, WindowWidth=256)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([jpeg.tobytes()])
    ds["PixelData"].VR = "OB"
    expected = window(cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE).astype(float), 128, 256)
    assert np.abs(decoded(ds, tmp_path).astype(int) - expected).max() <= 1  # two IDCT implementations


def test_the_preprocess_store_reads_dicom_as_predict_does(tmp_path):
    from cxrssl.data.writer import build_store

    elements = dict(RescaleSlope=1, RescaleIntercept=0, WindowCenter=2048, WindowWidth=4096)
    dicom(STORED, "MONOCHROME1", **elements).save_as(tmp_path / "a.dcm", enforce_file_format=True)
    config = preprocessing()
    (tmp_path / "store").mkdir()
    ok, problems = build_store([str(tmp_path / "a.dcm")], tmp_path / "store", config, 1, False, progress=False)
    assert ok.tolist() == [True] and problems == []
    stored = np.load(tmp_path / "store/images.npy")
    assert np.array_equal(stored[0], preprocess(255 - window(STORED.astype(float), 2048, 4096), config))


def test_the_mixed_sample_shows_the_nih_radiographs_it_was_made_from():
    from cxrssl.data.images import load_gray

    sample = Path(__file__).parent / "data/mixed-sample"
    sources = sorted((Path(__file__).parent / "data/nih-cxr14-sample/images").glob("*.png"))[:5]
    png = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(int) for p in sources]
    plain, mono1, jpeg = (load_gray(sample / f"{p.stem}.dcm", 1 << 24, 10**7).astype(int) for p in sources[2:])
    assert np.abs(plain - png[2]).max() <= 1  # rescale and window undo each other, up to rounding
    assert np.array_equal(mono1, png[3])  # inverted twice, lossless
    assert np.abs(jpeg - png[4]).mean() < 2  # lossy
    with pytest.raises(DataError, match="broken.dcm: cannot decode the DICOM pixel data"):
        load_gray(sample / "broken.dcm", 1 << 24, 10**7)
