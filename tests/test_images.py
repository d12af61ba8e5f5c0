import re

import cv2
import numpy as np
import pytest

from cxrssl.data.images import PreprocessConfig, clahe, load_and_preprocess, load_gray, preprocess
from cxrssl.errors import DataError, ParamError
from cxrssl.params import from_dict
from tests.conftest import params_section, sample_file, settings

LIMITS = {"max_bytes": 10**8, "max_pixels": 10**8}


def read(path, target=None, **limits):
    return load_gray(path, **{**LIMITS, **limits}, target=target)


@pytest.fixture
def jpeg(tmp_path):
    image = np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (320, 1))
    path = tmp_path / "image.jpg"
    cv2.imwrite(str(path), image)
    return path


def test_load_gray_reads_jpeg_png_rgba_and_16_bit(tmp_path, jpeg):
    assert read(jpeg).shape == (320, 400)
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 2] = 200
    rgba[..., 3] = 255
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    gray = read(tmp_path / "rgba.png")
    assert gray.shape == (10, 12) and gray.dtype == np.uint8 and gray.mean() > 40
    deep = np.arange(100, dtype=np.uint16).reshape(10, 10) * 600
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    out = read(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_reduced_jpeg_decode_keeps_twice_the_target_and_matches_opencvs(jpeg):
    image = read(jpeg, target=64)  # 320 >= 4*64 -> decode at 1/2
    assert image.shape == (160, 200)
    assert np.array_equal(image, cv2.imread(str(jpeg), cv2.IMREAD_REDUCED_GRAYSCALE_2))
    assert read(jpeg, target=100).shape == (320, 400)
    assert np.array_equal(read(jpeg), cv2.imread(str(jpeg), cv2.IMREAD_GRAYSCALE))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"not an image at all", "not an image file, not a JPEG, PNG or DICOM"),
        (b"\xff\xd8\xff\xe0 a JPEG start and nothing more", "truncated or corrupt JPEG"),
    ],
)
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"bad\.jpg: {message}"):
        read(path)


def test_the_decoder_decides_what_is_complete(tmp_path, jpeg):
    data = jpeg.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut-with-end.jpg").write_bytes(data[: len(data) // 2] + b"\xff\xd9")  # an end marker appended
    (tmp_path / "trailer.jpg").write_bytes(data + b"EDITOR TRAILER \x00\x01")  # bytes after the end marker
    for name in ("cut.jpg", "cut-with-end.jpg"):
        with pytest.raises(DataError, match=re.escape(name) + ": truncated or corrupt JPEG"):
            read(tmp_path / name)
    assert np.array_equal(read(tmp_path / "trailer.jpg"), read(jpeg))
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((50, 50), 7, np.uint8))
    png = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[:-20])
    (tmp_path / "trailer.png").write_bytes(png + b"after IEND")
    with pytest.raises(DataError, match=r"cut\.png: truncated or corrupt PNG"):
        read(tmp_path / "cut.png")
    assert np.array_equal(read(tmp_path / "trailer.png"), read(tmp_path / "ok.png"))


def test_limits_are_checked_before_decoding(tmp_path, jpeg):
    cv2.imwrite(str(tmp_path / "small.png"), np.zeros((4, 4), np.uint8))
    png = bytearray((tmp_path / "small.png").read_bytes())
    png[16:24] = (40000).to_bytes(4, "big") + (30000).to_bytes(4, "big")  # a header declaring 1.2 gigapixels
    (tmp_path / "huge.png").write_bytes(bytes(png))
    with pytest.raises(
        DataError,
        match=r"huge\.png: the header declares 40000 x 30000 = 1,200,000,000 pixels, "
        r"more than the 100,000,000 allowed \(preprocess\.max_image_pixels\)",
    ):
        read(tmp_path / "huge.png")
    with pytest.raises(
        DataError,
        match=r"image\.jpg: the header declares 400 x 320 = 128,000 pixels, more than "
        r"the 1,000 allowed",
    ):
        read(jpeg, max_pixels=1000)
    with pytest.raises(
        DataError,
        match=rf"image\.jpg: {jpeg.stat().st_size:,} bytes, more than the 100 allowed "
        r"\(preprocess\.max_file_bytes\)",
    ):
        read(jpeg, max_bytes=100)


def test_the_content_decides_the_format_not_the_name(tmp_path):
    cv2.imwrite(str(tmp_path / "float.tiff"), np.random.default_rng(0).random((20, 20)).astype(np.float32))
    (tmp_path / "float.tiff").rename(tmp_path / "float.png")  # a float TIFF saved under .png
    with pytest.raises(DataError, match=r"float\.png: a TIFF file, not a JPEG, PNG or DICOM image"):
        read(tmp_path / "float.png")
    dicom = bytes(128) + b"DICM" + bytes(64)  # read as DICOM, whatever its name: here a broken one
    (tmp_path / "scan.png").write_bytes(dicom)
    with pytest.raises(DataError, match=r"scan\.png: not a readable DICOM"):
        read(tmp_path / "scan.png")


@pytest.mark.parametrize("side", [120, 800])  # read whole, and decoded at a reduced size
def test_exif_orientation_is_never_applied(tmp_path, side):
    from PIL import Image

    image = np.zeros((side, side // 2), np.uint8)
    image[: side // 4] = 255  # bright top: a rotation would move it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(image).save(tmp_path / "exif.jpg", exif=exif.tobytes(), quality=95)
    out = read(tmp_path / "exif.jpg", target=100)
    assert out.shape[0] > out.shape[1]  # still as acquired: taller than wide
    assert out[: out.shape[0] // 8].mean() > 200 and out[-out.shape[0] // 8 :].mean() < 50


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"gone\.png: no such image file"):
        read(tmp_path / "gone.png")


@pytest.mark.parametrize("denoise", ["none", "median", "bilateral", "nlm"])
@pytest.mark.parametrize("use_clahe", [False, True])
def test_preprocess_gives_square_uint8(denoise, use_clahe):
    image = np.random.default_rng(0).integers(0, 255, (90, 70), dtype=np.uint8)
    out = preprocess(image, settings(PreprocessConfig, "preprocess", image_size=32, denoise=denoise, clahe=use_clahe))
    assert out.shape == (32, 32) and out.dtype == np.uint8


def test_median_removes_salt_noise():
    image = np.full((64, 64), 100, np.uint8)
    image[::7, ::5] = 255
    out = preprocess(image, settings(PreprocessConfig, "preprocess", image_size=64, denoise="median"))
    assert np.abs(out.astype(int) - 100).max() <= 1


def test_clahe_spreads_a_narrow_histogram():
    rng = np.random.default_rng(0)
    image = rng.integers(100, 120, (64, 64)).astype(np.uint8)
    assert np.std(clahe(image, 4.0, 4)) > 2 * np.std(image)


def test_real_nih_png_is_preprocessed():
    folder = sample_file("nih-cxr14-sample")
    files = sorted(folder.rglob("*.png"))[:3]
    assert files, "no PNG in the NIH sample"
    for file in files:
        out = load_and_preprocess(file, settings(PreprocessConfig, "preprocess", image_size=64, clahe=True))
        assert out.shape == (64, 64) and out.std() > 10


def test_bad_preprocess_params_name_the_key():
    with pytest.raises(ParamError, match=r"preprocess\.denoise is 'gaussian'"):
        from_dict(PreprocessConfig, "preprocess", {**params_section("preprocess"), "denoise": "gaussian"})
    with pytest.raises(ParamError, match=r"unknown key preprocess\.sise"):
        from_dict(PreprocessConfig, "preprocess", {**params_section("preprocess"), "sise": 64})
    with pytest.raises(ParamError, match=r"preprocess\.image_size is '64'; expected an integer"):
        from_dict(PreprocessConfig, "preprocess", {**params_section("preprocess"), "image_size": "64"})
