"""DICOM radiographs as the model sees them: uint8 grayscale, displayed as a reader would display them.

``decode_dicom`` turns a DICOM file's bytes (pydicom) into an (H, W) uint8
image; :func:`cxrssl.data.images.load_gray` calls it for every file that is
DICOM by content, so preprocess and predict read DICOM alike:

* the header is read first and its Rows x Columns checked against the pixel
  limit before any pixel data is decoded;
* stored values become modality values through the Modality LUT or Rescale
  Slope/Intercept, then display values through the VOI LUT or the first
  Window Center/Width (without either, the used range is stretched, as for
  16-bit PNGs);
* MONOCHROME1 (white is low) is inverted, so bone is bright in every image;
* the result is scaled to 0..255.

Transfer syntaxes (the decoders pydicom finds with this project's packages):
uncompressed (implicit and explicit VR, little endian) and RLE Lossless by
pydicom itself; JPEG Baseline, JPEG Extended and JPEG 2000 by Pillow.
Deflated files are refused: pydicom inflates them whole, with no bound,
before the header's size could be checked. JPEG Lossless and JPEG-LS, common in CR, need a plugin that is not
installed (``pylibjpeg`` with ``pylibjpeg-libjpeg``, or GDCM): such a file is
refused with a message that names its transfer syntax. An attribute
that cannot be used as given (a Window Width below 1, a frame count that is
not a number) is an error naming the file. The tests cover the uncompressed,
RLE and JPEG Baseline paths and the refusals.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble  # the meta alone: nothing inflated
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import DeflatedExplicitVRLittleEndian

from cxrssl.data.images import check_pixels
from cxrssl.errors import DataError


def decode_dicom(path: str | Path, data: bytes, max_pixels: int) -> np.ndarray:
    """The (H, W) uint8 display image of a single-frame grayscale DICOM file (see the module's docstring)."""
    syntax = _transfer_syntax(path, data)
    if syntax == DeflatedExplicitVRLittleEndian:
        raise DataError(
            f"{path}: a deflated DICOM file (Deflated Explicit VR Little Endian) is not read: it would be "
            "inflated whole before its size could be checked; convert it (dcmconv +te) to read it"
        )
    try:
        header = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, ValueError, EOFError, OSError) as error:
        raise DataError(f"{path}: not a readable DICOM file ({error})") from None
    try:
        return _display(path, header, data, max_pixels, getattr(syntax, "name", syntax) or "unknown transfer syntax")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as error:
        # an attribute pydicom reads but that cannot be used as given (a text frame count, a bad window)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: a DICOM attribute that cannot be used ({reason})") from None


def _transfer_syntax(path, data: bytes):
    """The file meta's Transfer Syntax UID, read without touching the data set (None if it has none)."""
    try:
        stream = BytesIO(data)
        read_preamble(stream, False)
        return _read_file_meta_info(stream).get("TransferSyntaxUID")
    except (InvalidDicomError, ValueError, EOFError, OSError, KeyError) as error:
        raise DataError(f"{path}: not a readable DICOM file ({error})") from None


def _display(path, header, data: bytes, max_pixels: int, syntax: str) -> np.ndarray:
    if "Rows" not in header or "Columns" not in header:
        raise DataError(f"{path}: not a readable DICOM image (its header has no Rows and Columns)")
    rows, columns = int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0)
    check_pixels(path, rows, columns, max_pixels, "DICOM header")
    interpretation = str(header.get("PhotometricInterpretation", ""))
    if interpretation not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(f"{path}: a {interpretation or 'colour'} DICOM image, not a grayscale radiograph")
    if int(header.get("NumberOfFrames", 1) or 1) != 1:
        raise DataError(f"{path}: a multi-frame DICOM file; expected one radiograph")
    try:
        dataset = pydicom.dcmread(BytesIO(data))
        stored = dataset.pixel_array
    except Exception as error:  # pydicom raises many kinds: missing decoder, truncated pixel data, ...
        raise DataError(f"{path}: cannot decode the DICOM pixel data ({syntax}): {error}") from None
    if stored.shape != (rows, columns):
        raise DataError(f"{path}: DICOM pixel data of shape {stored.shape}, expected {rows} x {columns}")
    values = apply_modality_lut(stored, dataset).astype(np.float64)
    if "VOILUTSequence" in dataset:  # a lookup table: its output spans 0 .. 2^bits - 1
        values = apply_voi_lut(np.round(values).astype(np.int64), dataset, index=0).astype(np.float64)  # LUT indices
        lo, hi = 0.0, float(2 ** int(dataset.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:  # the linear window of PS3.3 C.11.2.1.2
        lo, hi = _window_bounds(path, dataset)
    else:
        lo, hi = (float(v) for v in np.percentile(values, (0.5, 99.5)))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise DataError(f"{path}: DICOM display range {lo} .. {hi} is not finite (rescale or window)")
    image = np.clip((values - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255)
    if interpretation == "MONOCHROME1":
        image = 255.0 - image
    return np.round(image).astype(np.uint8)


def _window_bounds(path, dataset) -> tuple[float, float]:
    """The first window's range: scaling it to 0..255 is DICOM's linear VOI function ("LINEAR")."""
    center, width = dataset.WindowCenter, dataset.WindowWidth
    center = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
    width = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
    if not width >= 1:  # PS3.3 C.11.2.1.2: Window Width shall be >= 1
        raise DataError(f"{path}: DICOM Window Width {width:g}; it must be at least 1")
    return center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
