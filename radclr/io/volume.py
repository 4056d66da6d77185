"""NIfTI / NRRD / MetaImage through SimpleITK (2-D images and 3-D volumes).

SimpleITK's array is indexed ``[z, y, x]`` while its spacing is ``(x, y, z)``; the spacing returned here is
reversed to array-axis order. A 3-D file with a single slice (common for 2-D NIfTI) is returned as ``[H, W]``.
Values are kept as stored after the file's own scaling (NIfTI ``scl_slope``/``scl_inter`` are applied by ITK).
Vector (multi-component) images are averaged over components with an :class:`ImageConversionWarning`.
No reorientation is done: arrays are in the file's index order.

NaN and infinite voxels: ITK's NIfTI reader silently turns them into 0, which would hide a documented error
(``radclr data validate`` reports NaN/inf; training refuses such an image naming the file). For a floating-point
NIfTI file the raw voxels are therefore checked too (:func:`_nifti_nonfinite`) and non-finite ones are put back
into the array, so every later check sees them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from radclr.errors import ImageReadError, require_package
from radclr.io.image import LoadedImage
from radclr.io.raster import ImageConversionWarning

FORMAT_OF_SUFFIX = {".nii": "nifti", ".nii.gz": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "mha",
                    ".mhd": "mha"}


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # ITK messages start with a source location; the reason is in the last lines
    useful = [ln for ln in lines if "Description:" in ln] or lines[-1:] or [type(e).__name__]
    return useful[0].replace("Description:", "").strip()


def volume_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of the last two array axes, from the header only."""
    sitk = require_package("SimpleITK", package="SimpleITK", purpose="reading NIfTI/NRRD/MetaImage files")

    path = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise ImageReadError(path, f"cannot read {FORMAT_OF_SUFFIX.get(_suffix(path), 'image')} header: "
                                   f"{_first_line(e)}") from None
    size = reader.GetSize()  # (x, y[, z])
    return int(size[1]), int(size[0])


def _read_sitk(path: Path):
    sitk = require_package("SimpleITK", package="SimpleITK", purpose="reading NIfTI/NRRD/MetaImage files")

    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as e:
        raise ImageReadError(path, f"corrupt or unreadable {FORMAT_OF_SUFFIX.get(_suffix(path), 'image')} file: "
                                   f"{_first_line(e)}") from None


_NIFTI_FLOAT = {16: np.float32, 64: np.float64}  # NIfTI datatype codes of floating-point voxels


def _nifti_nonfinite(path: Path, shape: tuple) -> np.ndarray | None:
    """The raw voxels of a floating-point NIfTI-1/2 file where they are NaN or infinite (array of ``shape`` with
    those values, finite elsewhere = 0), or None when the file is not floating-point or has no such voxel."""
    import gzip

    try:
        opener = gzip.open if _suffix(path) == ".nii.gz" else open
        with opener(path, "rb") as f:
            head = f.read(540)
            for order in ("<", ">"):
                size = int(np.frombuffer(head[:4], dtype=f"{order}i4")[0])
                if size in (348, 540):
                    break
            else:
                return None
            if size == 348:
                dtype_code = int(np.frombuffer(head[70:72], dtype=f"{order}i2")[0])
                offset = int(np.frombuffer(head[108:112], dtype=f"{order}f4")[0])
            else:
                dtype_code = int(np.frombuffer(head[12:14], dtype=f"{order}i2")[0])
                offset = int(np.frombuffer(head[168:176], dtype=f"{order}i8")[0])
            if dtype_code not in _NIFTI_FLOAT:
                return None
            f.seek(0)
            raw = f.read()
    except (OSError, EOFError, ValueError):
        return None
    dt = np.dtype(_NIFTI_FLOAT[dtype_code]).newbyteorder(order)
    n = int(np.prod(shape))
    data = np.frombuffer(raw, dtype=dt, count=n, offset=max(offset, size)) if len(raw) >= offset + n * dt.itemsize \
        else None
    if data is None or np.isfinite(data).all():
        return None
    return np.where(np.isfinite(data), 0, data).reshape(shape).astype(np.float32)


def read_volume(path: str | Path) -> LoadedImage:
    """Decode a NIfTI/NRRD/MHA file into ``[H, W]`` or ``[D, H, W]`` float32 with spacing in array order."""
    sitk = require_package("SimpleITK", package="SimpleITK", purpose="reading NIfTI/NRRD/MetaImage files")

    path = Path(path)
    img = _read_sitk(path)
    arr = sitk.GetArrayFromImage(img)
    spacing = tuple(float(s) for s in reversed(img.GetSpacing()))
    meta = {"format": FORMAT_OF_SUFFIX.get(_suffix(path), "sitk"), "pixel_type": img.GetPixelIDTypeAsString(),
            "bit_depth": int(arr.dtype.itemsize * 8)}
    ncomp = img.GetNumberOfComponentsPerPixel()
    if ncomp > 1:
        warnings.warn(f"{path}: {ncomp}-component image averaged to one channel", ImageConversionWarning,
                      stacklevel=2)
        arr = arr.mean(axis=-1)
        meta["converted"] = "component mean"
    if meta["format"] == "nifti" and ncomp == 1:  # NaN/inf voxels that ITK's reader turned into 0
        bad = _nifti_nonfinite(path, arr.shape)
        if bad is not None:
            arr = np.where(np.isfinite(bad), arr, bad)
    if arr.ndim == 3 and arr.shape[0] == 1:  # a 2-D image stored as a one-slice volume
        arr, spacing = arr[0], spacing[1:]
    if arr.ndim not in (2, 3):
        raise ImageReadError(path, f"expected a 2-D image or 3-D volume, got array shape {arr.shape}")
    return LoadedImage(np.ascontiguousarray(arr, dtype=np.float32), spacing, str(path), meta)


def read_volume_mask(path: str | Path) -> np.ndarray:
    """Boolean mask from a NIfTI/NRRD/MHA label file: nonzero = region (same axis rules as :func:`read_volume`)."""
    sitk = require_package("SimpleITK", package="SimpleITK", purpose="reading NIfTI/NRRD/MetaImage files")

    path = Path(path)
    img = _read_sitk(path)
    arr = sitk.GetArrayFromImage(img)
    if img.GetNumberOfComponentsPerPixel() > 1:  # vector labels ([H, W, C] or [D, H, W, C]): any component
        arr = np.any(arr != 0, axis=-1)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    return np.asarray(arr != 0)
