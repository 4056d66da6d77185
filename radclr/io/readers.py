"""One entry point for every image file: :func:`read_image`, :func:`image_size`, :func:`read_mask`.

The format is chosen from the file name (``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff``, ``.bmp``,
``.dcm``/``.dicom``, ``.nii``/``.nii.gz``, ``.nrrd``/``.nhdr``, ``.mha``/``.mhd``); a file without a
suffix is recognised by its first bytes (DICOM ``DICM`` at byte 128, PNG and JPEG signatures). Every failure
-- missing file, unknown format, truncated or corrupt data, unsupported DICOM transfer syntax -- raises
:class:`~radclr.errors.ImageReadError` naming the file and the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radclr.errors import ImageReadError
from radclr.io.dicom import dicom_size, read_dicom, read_dicom_stored
from radclr.io.image import LoadedImage
from radclr.io.raster import ImageConversionWarning, raster_size, read_raster, read_raster_mask
from radclr.io.volume import read_volume, read_volume_mask, volume_size

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
SUPPORTED_SUFFIXES = RASTER_SUFFIXES + DICOM_SUFFIXES + VOLUME_SUFFIXES

__all__ = ["read_image", "image_size", "read_mask", "image_kind", "ImageConversionWarning", "SUPPORTED_SUFFIXES"]


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _sniff(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff":
        return "raster"
    if head[128:132] == b"DICM":
        return "dicom"
    return None


def image_kind(path: str | Path) -> str:
    """``"raster"``, ``"dicom"`` or ``"volume"`` for ``path``; :class:`ImageReadError` if not an image file."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "file not found")
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    suffix = _suffix(path)
    if suffix in RASTER_SUFFIXES:
        return "raster"
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in VOLUME_SUFFIXES:
        return "volume"
    kind = _sniff(path) if suffix == "" or suffix[1:].isdigit() else None  # DICOM files often lack a suffix
    if kind:
        return kind
    raise ImageReadError(path, f"unknown image format {suffix or '(no suffix)'!r}; supported: "
                               f"{', '.join(SUPPORTED_SUFFIXES)}")


def read_image(path: str | Path, *, apply_voi: bool = True) -> LoadedImage:
    """Read any supported image as a :class:`LoadedImage` (float32, file intensity scale, spacing if known).

    Colour images are converted to grayscale with an :class:`ImageConversionWarning` naming the file.
    ``apply_voi`` (DICOM only): apply the file's VOI LUT / window (default, as a viewer would).
    """
    path = Path(path)
    kind = image_kind(path)
    if kind == "raster":
        return read_raster(path)
    if kind == "dicom":
        return read_dicom(path, apply_voi=apply_voi)
    return read_volume(path)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of the image as :func:`read_image` returns it, reading only the header.

    For volumes: the last two array axes (rows, columns of a slice).
    """
    path = Path(path)
    kind = image_kind(path)
    if kind == "raster":
        return raster_size(path)
    if kind == "dicom":
        return dicom_size(path)
    return volume_size(path)


def read_mask(path: str | Path) -> np.ndarray:
    """A region mask as a boolean array: nonzero = region (PNG/JPEG/TIFF in any channel, NIfTI/NRRD/MHA labels,
    or the stored values of a DICOM image)."""
    path = Path(path)
    kind = image_kind(path)
    if kind == "raster":
        return read_raster_mask(path)
    if kind == "volume":
        return read_volume_mask(path)
    return read_dicom_stored(path) != 0
