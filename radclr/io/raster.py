"""PNG / JPEG (and TIFF / BMP) through Pillow.

* 8-bit grayscale (``L``) -> 0..255; 16-bit grayscale (``I;16*``) -> 0..65535; 32-bit integer (``I``) and float
  (``F``) kept as they are; bilevel (``1``) -> 0 / 255.
* Colour images (RGB, RGBA, palette, CMYK, YCbCr) and grayscale + alpha (``LA``) become grayscale, with an
  :class:`ImageConversionWarning` naming the file: identical channels are taken as they are, otherwise the
  ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (the weights Pillow uses), computed in float so that no
  rounding is added. Alpha is dropped.
* Spacing is ``None``: PNG/JPEG resolution tags describe print resolution, not detector pixel size.
* A header claiming more than twice Pillow's ``MAX_IMAGE_PIXELS`` (Pillow's decompression-bomb limit, about
  179 million pixels; a 16k x 11k image is still read) is refused with :class:`ImageReadError` -- this module is
  the one place radclr opens image files with Pillow, so every command (validate, radiomics, train, predict)
  reports it the same way.
* EXIF orientation (a phone photo of a film, a JPEG from some viewers) is **not applied**: boxes, masks and the
  label table's sizes are in the stored pixels; an :class:`ImageConversionWarning` says so (``data validate``
  lists it), so the mismatch with what a viewer shows is never silent.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from radclr.errors import ImageReadError
from radclr.io.image import LoadedImage

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageConversionWarning(UserWarning):
    """An image was converted on reading (colour -> grayscale, alpha dropped, channels merged)."""


def _open(path: Path):
    try:
        return Image.open(path)
    except Image.DecompressionBombError as e:
        raise ImageReadError(path, f"the header claims an enormous image ({_bomb_pixels(e)}); refused as a corrupt "
                                   "header or a decompression bomb") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a readable PNG/JPEG image (unrecognised or corrupt header)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(path, f"corrupt or truncated image file (header unreadable): {e}") from None


def _bomb_pixels(e: Exception) -> str:
    m = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(e))
    return f"{int(m.group(1)):,} pixels, limit {int(m.group(2)):,}" if m else str(e)


def _format_name(im) -> str:
    fmt = (im.format or "").lower()
    return {"jpeg": "jpeg", "png": "png", "mpo": "jpeg"}.get(fmt, fmt or "raster")


def raster_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` from the header only (Pillow decodes lazily)."""
    path = Path(path)
    with _open(path) as im:
        w, h = im.size
    return int(h), int(w)


def _to_gray(arr: np.ndarray, decoded_mode: str, mode: str, path: Path) -> tuple[np.ndarray, str]:
    """Grayscale from a colour array ``[H, W, C]`` (alpha dropped), and what was done.

    ``decoded_mode`` is the Pillow mode of ``arr``; ``mode`` the file's own mode (named in the warning).
    """
    if arr.ndim == 2:
        return arr.astype(np.float32), "none"
    has_alpha = decoded_mode in ("RGBA", "LA", "La", "RGBa")
    colour = arr[..., :-1] if has_alpha else arr
    if colour.shape[-1] == 1:
        warnings.warn(f"{path}: alpha channel dropped ({mode} read as grayscale)", ImageConversionWarning,
                      stacklevel=4)
        return colour[..., 0].astype(np.float32), "alpha dropped"
    colour = colour[..., :3]
    if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2]):
        warnings.warn(f"{path}: {mode} image with identical channels read as grayscale", ImageConversionWarning,
                      stacklevel=4)
        return colour[..., 0].astype(np.float32), "identical channels"
    warnings.warn(f"{path}: {mode} image converted to grayscale (ITU-R 601 luma)", ImageConversionWarning,
                  stacklevel=4)
    gray = colour.astype(np.float64) @ LUMA
    return gray.astype(np.float32), "luma"


_ORIENTATIONS = {2: "mirrored", 3: "rotated 180 degrees", 4: "flipped vertically", 5: "transposed",
                 6: "rotated 90 degrees clockwise", 7: "transversed", 8: "rotated 90 degrees counter-clockwise"}


def _exif_orientation(im) -> int | None:
    """The EXIF Orientation tag (274) of a JPEG/TIFF/PNG, or None. Policy: never applied -- boxes, masks and the
    label table's width/height are in the stored pixels -- but said (ImageConversionWarning; `data validate`)."""
    try:
        value = im.getexif().get(274)
        return int(value) if value is not None else None
    except Exception:  # noqa: BLE001 -- a damaged EXIF block is not a reason to refuse the image
        return None


def read_raster(path: str | Path) -> LoadedImage:
    """Decode a PNG/JPEG/TIFF/BMP file (see module docstring for the intensity rules)."""
    path = Path(path)
    with _open(path) as im:
        fmt, mode = _format_name(im), im.mode
        try:
            im.load()
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageReadError(path, f"corrupt or truncated {fmt.upper()} file: {e}") from None
        if getattr(im, "n_frames", 1) > 1:
            warnings.warn(f"{path}: {im.n_frames} frames; only the first is read", ImageConversionWarning,
                          stacklevel=3)
        orientation = _exif_orientation(im)
        if orientation not in (None, 1):
            warnings.warn(f"{path}: EXIF orientation {orientation} ({_ORIENTATIONS.get(orientation, '?')}) is not "
                          f"applied: the image is used as stored, and its boxes are read in the stored pixels "
                          f"(viewers show it turned)", ImageConversionWarning, stacklevel=3)
        if mode == "P":  # palette: expand to its colours first
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
        elif mode == "1":
            im = im.convert("L")
        elif mode == "PA":
            im = im.convert("RGBA")
        decoded_mode = im.mode
        arr = np.asarray(im)
    if mode in _SIXTEEN_BIT:
        bit_depth = 16
    elif mode in ("I", "F"):
        bit_depth = 32
    else:
        bit_depth = 8
    gray, conversion = _to_gray(arr, decoded_mode, mode, path)
    meta = {"format": fmt, "bit_depth": bit_depth, "mode": mode}
    if conversion != "none":
        meta["converted"] = conversion
    return LoadedImage(array=np.ascontiguousarray(gray, dtype=np.float32), spacing=None, source=str(path), meta=meta)


def read_raster_mask(path: str | Path) -> np.ndarray:
    """Boolean mask from a PNG/JPEG/TIFF: nonzero in any channel (alpha ignored) = region."""
    path = Path(path)
    with _open(path) as im:
        try:
            im.load()
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageReadError(path, f"corrupt or truncated mask file: {e}") from None
        if im.mode == "P":
            im = im.convert("RGB")
        mode = im.mode
        arr = np.asarray(im)
    if arr.ndim == 3:
        if mode in ("RGBA", "LA"):
            arr = arr[..., :-1]
        return np.any(arr != 0, axis=-1)
    return arr != 0
