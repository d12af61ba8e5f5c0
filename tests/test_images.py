import cv2
import numpy as np
import pytest

from cxrssl.data.images import PreprocessConfig, clahe, load_and_preprocess, load_gray, preprocess
from cxrssl.errors import DataError, ParamError
from cxrssl.params import from_dict
from tests.conftest import params_section, settings, shared_file


@pytest.fixture
def jpeg(tmp_path):
    image = np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (320, 1))
    path = tmp_path / "image.jpg"
    cv2.imwrite(str(path), image)
    return path


def test_load_gray_reads_jpeg_png_rgba_and_16_bit(tmp_path, jpeg):
    assert load_gray(jpeg).shape == (320, 400)
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 2] = 200
    rgba[..., 3] = 255
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    gray = load_gray(tmp_path / "rgba.png")
    assert gray.shape == (10, 12) and gray.dtype == np.uint8 and gray.mean() > 40
    deep = (np.arange(100, dtype=np.uint16).reshape(10, 10) * 600)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    out = load_gray(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_reduced_jpeg_decode_keeps_twice_the_target(jpeg):
    image = load_gray(jpeg, target=64)  # 320 >= 4*64 -> decode at 1/2
    assert image.shape == (160, 200)
    assert load_gray(jpeg, target=100).shape == (320, 400)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"not an image at all", "not a decodable image"),
    ],
)
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"bad\.jpg: {message}"):
        load_gray(path)


def test_truncated_files_are_refused(tmp_path, jpeg):
    data = jpeg.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: truncated JPEG"):
        load_gray(tmp_path / "cut.jpg")
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((50, 50), 7, np.uint8))
    png = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[:-20])
    with pytest.raises(DataError, match=r"cut\.png: truncated PNG"):
        load_gray(tmp_path / "cut.png")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"gone\.png: no such image file"):
        load_gray(tmp_path / "gone.png")


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
    folder = shared_file("nih-cxr14-sample")
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
