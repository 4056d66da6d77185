"""DICOM through pydicom: modality LUT (rescale slope/intercept), VOI LUT / window, MONOCHROME1 inversion.

Order (DICOM PS3.4 N.2, the grayscale pipeline):

1. decode the stored values (compressed transfer syntaxes through pydicom's decoders; JPEG, JPEG-LS and
   JPEG 2000 through the installed pylibjpeg plugins, RLE natively);
2. modality LUT: ``value = stored * RescaleSlope + RescaleIntercept`` or a Modality LUT Sequence
   (:func:`pydicom.pixels.apply_modality_lut`);
3. VOI LUT: the first VOI LUT Sequence item or the first Window Center / Width
   (:func:`pydicom.pixels.apply_voi_lut`); ``apply_voi=False`` skips it. pydicom keeps the output in the
   range the modality step can produce, so the result stays in the file's own intensity scale;
4. MONOCHROME1 (low values = white) is inverted inside that output range, ``lo + hi - value``, so that bright =
   dense for every file. The range is the theoretical one (from BitsStored, PixelRepresentation, slope and
   intercept, or the LUT's bit depth), so the result does not depend on the image content -- unless the
   pixel values exceed it (inconsistent headers), when the range is widened to hold them.

Spacing: ``PixelSpacing`` (patient plane), else ``ImagerPixelSpacing`` (detector plane), as (row, col) mm;
multi-frame files add ``SpacingBetweenSlices`` (or ``SliceThickness``) in front, or give ``None``.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from radclr.errors import ImageReadError
from radclr.io.image import LoadedImage
from radclr.io.raster import LUMA, ImageConversionWarning

CODEC_HINT = "install the DICOM codecs (pip install 'radclr[dicom-codecs]': pylibjpeg, -libjpeg, -openjpeg) " \
             "or convert the file to an uncompressed transfer syntax"


def _read_dataset(path: Path, *, header_only: bool = False):
    import pydicom  # only for DICOM files
    from pydicom.errors import InvalidDicomError  # only for DICOM files

    kwargs = {"stop_before_pixels": True} if header_only else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about odd but readable elements
            try:
                return pydicom.dcmread(path, **kwargs)
            except InvalidDicomError:
                # files without the 128-byte preamble are common; read them if they parse as DICOM
                ds = pydicom.dcmread(path, force=True, **kwargs)
                if "Rows" not in ds or "Columns" not in ds:
                    raise ImageReadError(path, "not a DICOM file (no DICM header, no image attributes)") from None
                return ds
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except Exception as e:  # pydicom raises many types for damaged files (EOFError, struct.error, ...)
        raise ImageReadError(path, f"corrupt or truncated DICOM file: {type(e).__name__}: {e}") from None


def _transfer_syntax(ds):
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return uid


def _ts_name(uid) -> str:
    if uid is None:
        return "unknown transfer syntax"
    name = getattr(uid, "name", str(uid))
    return f"'{name}' ({uid})" if name != str(uid) else f"'{uid}'"


def dicom_size(path: str | Path) -> tuple[int, int]:
    """``(Rows, Columns)`` from the header (pixel data not read)."""
    path = Path(path)
    ds = _read_dataset(path, header_only=True)
    try:
        return int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise ImageReadError(path, "DICOM header lacks Rows/Columns") from None


def _stored_range(ds) -> tuple[float, float]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    return 0.0, float(2**bits - 1)


def _rescale(ds) -> tuple[float, float]:
    """(slope, intercept) as pydicom's modality LUT applies them: only when *both* attributes are present."""
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        return float(ds.RescaleSlope if ds.RescaleSlope is not None else 1.0), \
            float(ds.RescaleIntercept if ds.RescaleIntercept is not None else 0.0)
    return 1.0, 0.0


def _modality_range(ds) -> tuple[float, float]:
    """Range of values after the modality LUT step (theoretical, not data-dependent)."""
    seq = ds.get("ModalityLUTSequence")
    if seq:
        return 0.0, float(2 ** int(seq[0].LUTDescriptor[2]) - 1)
    lo, hi = _stored_range(ds)
    slope, intercept = _rescale(ds)
    a, b = lo * slope + intercept, hi * slope + intercept
    return min(a, b), max(a, b)


def _spacing(ds, ndim: int):
    sp = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if not sp or len(sp) < 2:
        return None
    try:
        row_col = (float(sp[0]), float(sp[1]))
    except (TypeError, ValueError):
        return None
    if ndim == 2:
        return row_col
    dz = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    try:
        return (float(dz),) + row_col if dz else None
    except (TypeError, ValueError):
        return None


@contextmanager
def _quiet_decoders():
    """pydicom's decoder plugins log each failed attempt with its traceback (logger ``pydicom``) before the error
    that says all of them failed; that error is turned into one line naming the file, so their logging is held
    back while decoding."""
    logger = logging.getLogger("pydicom")  # its children (pydicom.pixels.decoders.base) inherit the level
    before = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(before)


def _decode(ds, path: Path) -> np.ndarray:
    uid = _transfer_syntax(ds)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageReadError(path, "DICOM file has no pixel data (truncated, or not an image)")
    try:
        with warnings.catch_warnings(), _quiet_decoders():
            warnings.simplefilter("ignore")
            return ds.pixel_array
    except NotImplementedError as e:
        raise ImageReadError(path, f"transfer syntax {_ts_name(uid)} is not supported: {e}; {CODEC_HINT}") from None
    except RuntimeError as e:
        msg = str(e).strip().splitlines()
        first = " ".join(s.strip() for s in msg[:3])
        if "exceptions were raised" in str(e):  # a decoder exists but the data do not decode
            raise ImageReadError(path, f"corrupt compressed pixel data ({_ts_name(uid)}), or a transfer syntax that "
                                       f"does not match the data: {first}") from None
        raise ImageReadError(path, f"cannot decode transfer syntax {_ts_name(uid)}: {first}; {CODEC_HINT}") from None
    except (ValueError, AttributeError, EOFError, OSError, KeyError) as e:
        raise ImageReadError(path, f"corrupt or truncated pixel data ({_ts_name(uid)}): {e}") from None


def read_dicom_stored(path: str | Path) -> np.ndarray:
    """The stored pixel values, without any LUT or inversion (for label masks)."""
    path = Path(path)
    return np.asarray(_decode(_read_dataset(path), path))


def read_dicom(path: str | Path, *, apply_voi: bool = True) -> LoadedImage:
    """Decode one DICOM file into a :class:`LoadedImage` (see module docstring for the pipeline)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut  # only for DICOM files

    path = Path(path)
    ds = _read_dataset(path)
    stored = _decode(ds, path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    meta = {
        "format": "dicom",
        "bit_depth": int(ds.get("BitsStored", 0) or 0),
        "photometric": photometric,
        "transfer_syntax": str(_transfer_syntax(ds) or ""),
        "modality": str(ds.get("Modality", "")),
        "view": str(ds.get("ViewPosition", "")),
    }
    if samples > 1:  # colour DICOM (secondary captures): grayscale like the raster reader
        warnings.warn(f"{path}: {photometric} DICOM converted to grayscale (ITU-R 601 luma)", ImageConversionWarning,
                      stacklevel=2)
        arr = np.asarray(stored, dtype=np.float64) @ LUMA
        meta["converted"] = "luma"
        return LoadedImage(arr.astype(np.float32), _spacing(ds, arr.ndim), str(path), meta)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = apply_modality_lut(stored, ds)
            lo, hi = _modality_range(ds)
            meta["rescale"] = _rescale(ds)
            meta["voi"] = None
            if apply_voi:
                if ds.get("VOILUTSequence"):
                    if np.issubdtype(values.dtype, np.floating):  # VOI LUTs index integers
                        values = np.round(values).astype(np.int64)
                    out = apply_voi_lut(values, ds, index=0)
                    if out is not values:
                        meta["voi"] = "lut"
                        lo, hi = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
                    values = out
                elif "WindowCenter" in ds and "WindowWidth" in ds:
                    values = apply_voi_lut(values, ds, index=0)
                    meta["voi"] = "window"
                    center, width = ds.WindowCenter, ds.WindowWidth
                    meta["window"] = (float(center[0] if ds["WindowCenter"].VM > 1 else center),
                                      float(width[0] if ds["WindowWidth"].VM > 1 else width))
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, NotImplementedError) as e:
        raise ImageReadError(path, f"invalid modality/VOI LUT attributes: {type(e).__name__}: {e}") from None

    values = np.asarray(values, dtype=np.float64)
    if photometric == "MONOCHROME1":
        lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
        values = (lo + hi) - values
        meta["inverted"] = True
    meta["range"] = (lo, hi)
    arr = values.astype(np.float32)
    if frames > 1 and arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    return LoadedImage(np.ascontiguousarray(arr), _spacing(ds, arr.ndim), str(path), meta)
