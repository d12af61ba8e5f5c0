"""The one image loader, and the preprocessing operations (OpenCV).

``load_gray`` decodes JPEG/PNG (8- or 16-bit, gray, RGB or RGBA) to uint8
grayscale and refuses empty, truncated or undecodable files with a message that
names the file. ``preprocess`` resizes, optionally denoises and optionally
applies CLAHE. ImageNet normalisation is not done here: the store keeps uint8
pixels and batches are normalised when they are formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cxrssl.data import archive
from cxrssl.errors import DataError
from cxrssl.params import require

DENOISERS = ("none", "median", "bilateral", "nlm")

_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_PNG_START, _PNG_END = b"\x89PNG", b"IEND\xaeB`\x82"


def _check_complete(path: Path, data: bytes) -> None:
    """Reject files that are empty or visibly cut short (decoders often accept them)."""
    if not data:
        raise DataError(f"{path}: empty file (0 bytes)")
    tail = data[-64:].rstrip(b"\x00\r\n ")
    if data[:2] == _JPEG_START and not tail.endswith(_JPEG_END):
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    if data[:4] == _PNG_START and not tail.endswith(_PNG_END):
        raise DataError(f"{path}: truncated PNG (no IEND chunk)")


def load_gray(path: str | Path, target: int | None = None) -> np.ndarray:
    """Read an image as uint8 grayscale.

    Args:
        path: a JPEG or PNG file, on disk or in a zip archive (``archive.zip::member``).
        target: the side the image will be resized to, if known. A JPEG at least
            4x larger is decoded at 1/2, 1/4 or 1/8 of its size in the DCT
            domain (keeping at least 2x the target), much faster than a full
            decode followed by a resize.

    Returns:
        (H, W) uint8 array.

    Raises:
        DataError: missing, empty, truncated or undecodable file.
    """
    try:
        data = archive.read_bytes(path)  # a file, or a member of a zip archive (archive::member)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read image ({error.strerror})") from None
    _check_complete(path, data)
    reduce = 1
    if target is not None and data[:2] == _JPEG_START:
        reduce = _jpeg_reduction(data, target)
    flags = {1: cv2.IMREAD_UNCHANGED, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
             4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[reduce]
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None or image.size == 0:
        raise DataError(f"{path}: not a decodable image")
    return _to_gray_uint8(image)


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
        workers: processes for the preprocess stage (0 = one per core).
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

    def validate(self) -> None:
        require(16 <= self.image_size <= 2048, "preprocess.image_size", self.image_size, "16 to 2048 pixels")
        require(self.denoise in DENOISERS, "preprocess.denoise", self.denoise, f"one of {', '.join(DENOISERS)}")
        require(self.median_ksize in (3, 5), "preprocess.median_ksize", self.median_ksize, "3 or 5")
        require(self.bilateral_sigma > 0, "preprocess.bilateral_sigma", self.bilateral_sigma, "> 0")
        require(self.nlm_h > 0, "preprocess.nlm_h", self.nlm_h, "> 0")
        require(self.clahe_clip_limit > 0, "preprocess.clahe_clip_limit", self.clahe_clip_limit, "> 0")
        require(1 <= self.clahe_tile_grid <= 64, "preprocess.clahe_tile_grid", self.clahe_tile_grid, "1 to 64")
        require(self.workers >= 0, "preprocess.workers", self.workers, "0 (all cores) or more")



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
    """Read one file and prepare it for the store (see :func:`preprocess`)."""
    return preprocess(load_gray(path, target=config.image_size), config)


def _jpeg_reduction(data: bytes, target: int) -> int:
    """The largest decode reduction (1, 2, 4, 8) that keeps a JPEG at least 2x ``target``."""
    size = _jpeg_size(data)
    if size is None:
        return 1
    factor = 1
    while factor < 8 and min(size) >= 4 * factor * target:
        factor *= 2
    return factor


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame marker; None if not found."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None
