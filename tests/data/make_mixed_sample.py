"""Write tests/data/mixed-sample/: five NIH sample radiographs as the formats a folder of new images comes in.

    python -m tests.data.make_mixed_sample

From the first five images of nih-cxr14-sample/images, in name order (their
labels are in that folder's table), each keeping its name:

1. the PNG as it is;
2. JPEG, quality 90;
3. DICOM DX, 12 bits stored in 16, Rescale Slope 2 and Intercept -1024, a
   window that displays the PNG's grey levels, uncompressed (explicit VR
   little endian);
4. DICOM, MONOCHROME1 (white is low), 12 bits, RLE Lossless;
5. DICOM, 8 bits, JPEG Baseline;

and ``broken.dcm``, the first DICOM cut short: a file that cannot be read.

The bytes depend on pydicom's and OpenCV's encoders; the pixels that reach a
model do not (tests/test_dicom.py checks each path).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, RLELossless

from tests.test_dicom import dicom

HERE = Path(__file__).resolve().parent
NIH = HERE / "nih-cxr14-sample/images"


def main() -> None:
    out = HERE / "mixed-sample"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    png, jpg, plain, mono1, jpeg_dicom = sorted(NIH.glob("*.png"))[:5]
    shutil.copy(png, out / png.name)
    cv2.imwrite(str(out / f"{jpg.stem}.jpg"), cv2.imread(str(jpg), cv2.IMREAD_GRAYSCALE), [cv2.IMWRITE_JPEG_QUALITY, 90])

    gray = cv2.imread(str(plain), cv2.IMREAD_GRAYSCALE).astype(np.float64)
    modality = gray * 8 - 100  # display values; stored = (modality - intercept) / slope, 12 bits
    stored = np.round((modality + 1024) / 2).astype(np.uint16)
    ds = dicom(stored, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=920, WindowWidth=2040)
    ds.save_as(out / f"{plain.stem}.dcm", enforce_file_format=True)

    inverted = (255 - cv2.imread(str(mono1), cv2.IMREAD_GRAYSCALE)).astype(np.uint16) * 16
    ds = dicom(inverted, "MONOCHROME1", WindowCenter=2040.5, WindowWidth=4081)  # displays 0..4080 as 0..255
    ds.compress(RLELossless)
    ds.save_as(out / f"{mono1.stem}.dcm", enforce_file_format=True)

    eight = cv2.imread(str(jpeg_dicom), cv2.IMREAD_GRAYSCALE)
    ok, encoded = cv2.imencode(".jpg", eight, [cv2.IMWRITE_JPEG_QUALITY, 90])
    ds = dicom(eight, WindowCenter=128, WindowWidth=256)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([encoded.tobytes()])
    ds["PixelData"].VR = "OB"
    ds.save_as(out / f"{jpeg_dicom.stem}.dcm", enforce_file_format=True)

    (out / "broken.dcm").write_bytes((out / f"{plain.stem}.dcm").read_bytes()[:4000])


if __name__ == "__main__":
    main()
