"""The one image loader, and the preprocessing operations (OpenCV).

``load_gray`` reads a JPEG or PNG (8- or 16-bit, gray, RGB or RGBA) or a
DICOM file (:mod:`cxrssl.data.dicom`: its window, LUTs and photometric
interpretation applied) as uint8 grayscale, within explicit limits, and
refuses anything else with one message that names the file:

* size: a file (or zip member, by the size it inflates to) larger than
  ``preprocess.max_file_bytes`` is refused before it is read;
* pixels: the header's width x height must not exceed
  ``preprocess.max_image_pixels``, checked before anything is decoded;
* completeness: the decoder itself decides. A JPEG is decoded by libjpeg-turbo
  (simplejpeg) in strict mode, so a warning such as "premature end of data
  segment" (a file cut short, even with an end marker appended) is an error,
  while bytes after the end-of-image marker (an editor's trailer) are
  ignored, as every viewer ignores them; a PNG that libpng cannot read to
  the end is refused, and bytes after IEND are ignored;
* format: the file's content decides, not its name: a DICOM file named
  ``.png`` is read as DICOM, a TIFF or BMP named ``.png`` is refused as what
  it is;
* orientation: radiographs are read as acquired. EXIF orientation is never
  applied, at every size (DICOM and most PACS exports carry none; a JPEG
  written by a phone or viewer may, and is stored as encoded).

``preprocess`` resizes, optionally denoises and optionally applies CLAHE.
ImageNet normalisation is not done here: the store keeps uint8 pixels and
batches are normalised when they are formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import simplejpeg

from cxrssl.data import archive
from cxrssl.errors import DataError
from cxrssl.params import require

DENOISERS = ("none", "median", "bilateral", "nlm")

#: Leading bytes of the formats read here, and of the ones most often found under their names.
_MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
    b"GIF8": "GIF",
    b"RIFF": "RIFF (WebP)",
    b"\x00\x00\x00\x0cjP": "JPEG 2000",
}


def image_format(data: bytes) -> str | None:
    """The format the bytes start with (``JPEG``, ``PNG``, ...), None if unknown."""
    if len(data) > 132 and data[128:132] == b"DICM":
        return "DICOM"
    return next((name for magic, name in _MAGIC.items() if data.startswith(magic)), None)


def load_gray(path: str | Path, max_bytes: int, max_pixels: int, target: int | None = None) -> np.ndarray:
    """Read an image as uint8 grayscale, as acquired (no EXIF rotation).

    Args:
        path: a JPEG, PNG or DICOM file, on disk or in a zip archive (``archive.zip::member``).
        max_bytes, max_pixels: the limits (see the module's docstring).
        target: the side the image will be resized to, if known. A JPEG at least
            4x larger is decoded at 1/2, 1/4 or 1/8 of its size in the DCT
            domain (keeping at least 2x the target), much faster than a full
            decode followed by a resize.

    Returns:
        (H, W) uint8 array.

    Raises:
        DataError: missing, empty, too large, truncated, corrupt or not a JPEG, PNG or DICOM image.
    """
    try:
        data = archive.read_bytes(path, max_bytes)  # a file, or a member of a zip archive (archive::member)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read image ({error.strerror})") from None
    if not data:
        raise DataError(f"{path}: empty file (0 bytes)")
    kind = image_format(data)
    if kind == "JPEG":
        image = _decode_jpeg(path, data, max_pixels, target)
    elif kind == "PNG":
        image = _decode_png(path, data, max_pixels)
    elif kind == "DICOM":
        from cxrssl.data.dicom import decode_dicom  # here: pydicom is imported only when a DICOM file is met

        return decode_dicom(path, data, max_pixels)
    else:
        raise DataError(
            f"{path}: {'a ' + kind + ' file' if kind else 'not an image file'}, not a JPEG, PNG or DICOM "
            f"image (the content decides, not the name)"
        )
    return _to_gray_uint8(image)


def check_pixels(path, height: int, width: int, max_pixels: int, header: str = "header") -> None:
    """Refuse an image whose ``header`` declares no pixels or more than ``max_pixels``, before decoding it."""
    if height < 1 or width < 1:
        raise DataError(f"{path}: the {header} declares a {width} x {height} image")
    if height * width > max_pixels:
        raise DataError(
            f"{path}: the {header} declares {width} x {height} = {width * height:,} pixels, more than "
            f"the {max_pixels:,} allowed (preprocess.max_image_pixels)"
        )


def _decode_jpeg(path, data: bytes, max_pixels: int, target: int | None) -> np.ndarray:
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as error:
        raise DataError(f"{path}: truncated or corrupt JPEG (its header cannot be read: {error})") from None
    check_pixels(path, height, width, max_pixels)
    reduce = 1
    while target is not None and reduce < 8 and min(height, width) >= 4 * reduce * target:
        reduce *= 2
    try:  # strict: a decoder warning (data cut short, corrupt entropy data) is an error
        image = simplejpeg.decode_jpeg(
            data, colorspace="GRAY", strict=True, min_height=-(-height // reduce), min_width=-(-width // reduce)
        )
    except ValueError as error:
        raise DataError(f"{path}: truncated or corrupt JPEG (libjpeg: {error})") from None
    return image[:, :, 0]


def _decode_png(path, data: bytes, max_pixels: int) -> np.ndarray:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise DataError(f"{path}: truncated or corrupt PNG (no IHDR header)")
    check_pixels(path, int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big"), max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise DataError(f"{path}: not a decodable PNG ({str(error).strip().splitlines()[-1]})") from None
    if image is None or image.size == 0:
        raise DataError(f"{path}: truncated or corrupt PNG (libpng could not read it to the end)")
    return image


def _to_gray_uint8(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype == np.uint16:  # 16-bit PNGs: stretch the used range, not 0..65535
        lo, hi = np.percentile(image, (0.5, 99.5))
        image = np.clip((image.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255)
    return image.astype(np.uint8, copy=False)


@dataclass(frozen=True)
class PreprocessConfig:
    """How every image is prepared for the store.

    Attributes:
        image_size: output side in pixels (square; 224 for real runs).
        denoise: "none", "median", "bilateral" or "nlm" (non-local means).
        median_ksize: odd kernel size of the median filter.
        bilateral_sigma: colour and space sigma of the bilateral filter.
        nlm_h: filter strength of non-local means.
        clahe: apply CLAHE (contrast-limited adaptive histogram equalisation).
        clahe_clip_limit: CLAHE contrast limit.
        clahe_tile_grid: CLAHE tiles per side.
        workers: processes for the preprocess stage (0 = one per core; never
            more than the cores this process may use).
        max_file_bytes: the largest file (or zip member, once inflated) read,
            images and tables alike.
        max_image_pixels: the most pixels an image's header may declare.
    """

    image_size: int
    denoise: str
    median_ksize: int
    bilateral_sigma: float
    nlm_h: float
    clahe: bool
    clahe_clip_limit: float
    clahe_tile_grid: int
    workers: int
    max_file_bytes: int
    max_image_pixels: int

    def validate(self) -> None:
        require(16 <= self.image_size <= 2048, "preprocess.image_size", self.image_size, "16 to 2048 pixels")
        require(self.denoise in DENOISERS, "preprocess.denoise", self.denoise, f"one of {', '.join(DENOISERS)}")
        require(self.median_ksize in (3, 5), "preprocess.median_ksize", self.median_ksize, "3 or 5")
        require(self.bilateral_sigma > 0, "preprocess.bilateral_sigma", self.bilateral_sigma, "> 0")
        require(self.nlm_h > 0, "preprocess.nlm_h", self.nlm_h, "> 0")
        require(self.clahe_clip_limit > 0, "preprocess.clahe_clip_limit", self.clahe_clip_limit, "> 0")
        require(1 <= self.clahe_tile_grid <= 64, "preprocess.clahe_tile_grid", self.clahe_tile_grid, "1 to 64")
        require(self.workers >= 0, "preprocess.workers", self.workers, "0 (all cores) or more")
        require(self.max_file_bytes >= 1, "preprocess.max_file_bytes", self.max_file_bytes, "a positive integer")
        require(self.max_image_pixels >= 1, "preprocess.max_image_pixels", self.max_image_pixels, "a positive integer")


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to (size, size): area averaging when shrinking, bicubic when enlarging."""
    shrinking = image.shape[0] >= size and image.shape[1] >= size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interpolation)


def denoise(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Apply the configured denoising filter to a uint8 image."""
    if config.denoise == "none":
        return image
    if config.denoise == "median":
        return cv2.medianBlur(image, config.median_ksize)
    if config.denoise == "bilateral":
        sigma = config.bilateral_sigma
        return cv2.bilateralFilter(image, d=5, sigmaColor=sigma, sigmaSpace=sigma)
    if config.denoise == "nlm":
        return cv2.fastNlMeansDenoising(image, h=config.nlm_h, templateWindowSize=7, searchWindowSize=21)
    raise ValueError(f"unknown denoiser {config.denoise!r}; expected one of {DENOISERS}")


def clahe(image: np.ndarray, clip_limit: float, tile_grid: int) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of a uint8 image."""
    operator = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile_grid, tile_grid))
    return operator.apply(image)


def preprocess(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Resize, denoise, equalise: (H, W) uint8 -> (size, size) uint8."""
    out = denoise(resize(image, config.image_size), config)
    if config.clahe:
        out = clahe(out, config.clahe_clip_limit, config.clahe_tile_grid)
    return out


def load_and_preprocess(path: str | Path, config: PreprocessConfig) -> np.ndarray:
    """Read one file within the config's limits and prepare it for the store (see :func:`preprocess`)."""
    return preprocess(load_gray(path, config.max_file_bytes, config.max_image_pixels, config.image_size), config)
