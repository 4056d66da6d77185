"""PyRadiomics itself behind radclr's ``extract`` interface (``engine="pyradiomics"``).

The reference the torch engine is tested against, and the engine for what the torch engine does not compute
(filtered image types -- LoG, Wavelet, Gradient ..., seed 004's ~1000 features). One region per PyRadiomics
call, spread over ``jobs`` worker processes.

Configuration that is correct for 2-D (the traps are silent):

* each region goes in as a **2-D** SimpleITK image with ``force2D=False`` (``force2D=True`` on a 2-D image makes
  PyRadiomics drop an axis and corrupts most texture features -- refused with a ConfigError);
* intensities are always **float64** (uint8 input overflows inside PyRadiomics and corrupts textures);
* for the Original image type each region is cropped to its bounding box plus a one-pixel background border
  before it is sent (PyRadiomics crops to the bounding box itself, so the features are unchanged -- tested --
  and far less data crosses the process boundary); with filtered image types or whole-image normalisation the
  full image is sent, and a mask without any background pixel (a whole-image region) is padded by one pixel of
  background (image edge-replicated), which PyRadiomics' cropping removes again.

Degenerate regions follow radclr's policy (``radclr.radiomics.discretize``): an empty mask raises
:class:`~radclr.errors.DataError`; NaN/inf intensities inside the region, and regions PyRadiomics refuses
(single pixel, 1-pixel-wide line), give a NaN row and a logged reason.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable

import numpy as np
import torch

from radclr.errors import ConfigError, DataError
from radclr.radiomics.base import Settings

__all__ = ["PyRadiomicsEngine", "extract_pyradiomics", "pyradiomics_params"]

log = logging.getLogger(__name__)

_WHOLE_IMAGE_SETTINGS = ("normalize", "resampledPixelSpacing")
_EXTRACTOR = None  # one RadiomicsFeatureExtractor per worker process


def _settings_dict(settings: Settings) -> dict:
    shift = settings.voxel_array_shift
    if float(shift) != int(shift):
        raise ConfigError(f"setting voxelArrayShift: PyRadiomics accepts integers only, got {shift!r}")
    s: dict = {
        "voxelArrayShift": int(shift),
        "gldm_a": int(settings.gldm_a),
        "distances": [int(d) for d in settings.glcm_distances],
        "symmetricalGLCM": bool(settings.symmetrical_glcm),
        "minimumROIDimensions": int(settings.minimum_roi_dimensions),
        "label": 1,
    }
    if settings.bin_count is not None:
        s["binCount"] = int(settings.bin_count)
    else:
        s["binWidth"] = float(settings.bin_width)
    if settings.weighting_norm is not None:
        s["weightingNorm"] = settings.weighting_norm
    if settings.minimum_roi_size is not None:
        s["minimumROISize"] = int(settings.minimum_roi_size)
    return s


def pyradiomics_params(settings: Settings | None = None, classes=None, params=None) -> dict:
    """The PyRadiomics parameter dictionary for radclr settings/classes, or for a parameter file (``params``)."""
    if params is not None:
        from radclr.radiomics.params import load_params

        d = load_params(params).pyradiomics_dict()
    else:
        from radclr.radiomics.registry import CLASS_ORDER, resolve_classes

        settings = settings or Settings()
        if classes is None:
            feature_classes = {c: [] for c in CLASS_ORDER}
        else:
            feature_classes = {c: list(f) for c, f in resolve_classes(classes)}
        d = {"imageType": {"Original": {}}, "featureClass": feature_classes, "setting": _settings_dict(settings)}
    setting = dict(d.get("setting") or {})
    if setting.get("force2D"):
        raise ConfigError(
            "setting force2D: true is refused: radclr passes 2-D images, on which PyRadiomics' force2D silently "
            "drops an axis; remove it"
        )
    setting["force2D"] = False
    setting["additionalInfo"] = False  # diagnostics are not features
    d["setting"] = setting
    return d


def _crop_safe(params: dict) -> bool:
    setting = params.get("setting") or {}
    return set(params.get("imageType") or {"Original": {}}) == {"Original"} and not any(
        setting.get(k) for k in _WHOLE_IMAGE_SETTINGS
    )


def _make_extractor(params: dict):
    import radiomics
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    logging.getLogger("pykwalify").setLevel(logging.WARNING)  # "validation.valid" on every extractor
    try:
        return featureextractor.RadiomicsFeatureExtractor(params)
    except Exception as e:  # pykwalify SchemaError: PyRadiomics names the offending path
        raise ConfigError(f"PyRadiomics rejects the parameters: {e}") from None


def _init_worker(params: dict) -> None:
    global _EXTRACTOR
    _EXTRACTOR = _make_extractor(params)


def _run_tasks(tasks: list, extractor=None) -> list:
    """Worker: ``[(index, image, mask, spacing)]`` -> ``[(index, {name: value} | None, reason | None)]``."""
    import SimpleITK as sitk

    extractor = extractor if extractor is not None else _EXTRACTOR

    out = []
    for index, image, mask, spacing in tasks:
        try:
            img = sitk.GetImageFromArray(image)
            msk = sitk.GetImageFromArray(mask)
            img.SetSpacing((float(spacing[1]), float(spacing[0])))  # SimpleITK: (x, y) = (col, row)
            msk.SetSpacing((float(spacing[1]), float(spacing[0])))
            result = extractor.execute(img, msk)
            values = {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}
            out.append((index, values, None))
        except Exception as e:  # PyRadiomics refuses the region (e.g. a single pixel): NaN row, reason logged
            out.append((index, None, f"PyRadiomics: {type(e).__name__}: {e}"))
    return out


def _region_task(index: int, image: np.ndarray, mask: np.ndarray, spacing, crop: bool):
    """The (image, mask) PyRadiomics gets for one region (float64 image, uint8 mask with background)."""
    if crop:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        image = image[r0:r1, c0:c1]
        mask = mask[r0:r1, c0:c1]
        image = np.pad(image, 1, mode="edge")
        mask = np.pad(mask, 1)
    elif mask.all():
        image = np.pad(image, 1, mode="edge")
        mask = np.pad(mask, 1)
    return (index, np.ascontiguousarray(image, dtype=np.float64), mask.astype(np.uint8), tuple(spacing))


class PyRadiomicsEngine:
    """A PyRadiomics feature extractor (in ``jobs`` worker processes) with radclr's batch interface.

    Use as a context manager, or call :meth:`close`; one engine serves many :meth:`extract` calls.
    """

    def __init__(self, params: dict, jobs: int = 1, chunk: int = 4):
        if int(jobs) < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.params = params
        self.jobs = int(jobs)
        self.chunk = max(1, int(chunk))
        self.crop = _crop_safe(params)
        self._pool: ProcessPoolExecutor | None = None
        self._extractor = _make_extractor(params) if self.jobs == 1 else None
        self.names: list[str] | None = None

    def __enter__(self) -> "PyRadiomicsEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _map(self, tasks: list, progress: Callable[[int], None] | None) -> Iterable:
        if self.jobs == 1:
            for task in tasks:
                yield from _run_tasks([task], self._extractor)
                if progress:
                    progress(1)
            return
        if self._pool is None:
            import multiprocessing as mp

            # fork where available: workers only run PyRadiomics (no torch, no CUDA), and it needs no
            # `if __name__ == "__main__"` guard in the caller's script, unlike spawn
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(
                self.jobs, mp_context=mp.get_context(method), initializer=_init_worker, initargs=(self.params,)
            )
        chunks = [tasks[i : i + self.chunk] for i in range(0, len(tasks), self.chunk)]
        for part in self._pool.map(_run_tasks, chunks):
            yield from part
            if progress:
                progress(len(part))

    def extract(self, images, masks, spacing=None, progress: Callable[[int], None] | None = None):
        """``images``/``masks`` ``[B, H, W]`` -> ``(names, float64 numpy [B, F])`` (see :func:`extract_pyradiomics`)."""
        images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        masks = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
        if images.ndim != 3 or masks.shape != images.shape:
            raise ValueError(
                f"images and masks must both be [B, H, W]; got images {images.shape}, masks {masks.shape}"
            )
        masks = masks != 0
        B = images.shape[0]
        empty = [i for i in range(B) if not masks[i].any()]
        if empty:
            raise DataError(f"region(s) {empty[:20]} have an empty mask: nothing to compute radiomics on")
        if spacing is None:
            spacing = np.ones((B, 2))
        spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (B, 2))
        results: dict[int, dict | None] = {}
        tasks = []
        for i in range(B):
            inside = images[i][masks[i]]
            if not np.isfinite(inside).all():
                results[i] = None
                log.warning("radiomics: region %d: NaN or infinite intensity inside the region; its features are NaN", i)
                if progress:
                    progress(1)
                continue
            tasks.append(_region_task(i, images[i], masks[i], spacing[i], self.crop))
        for index, values, reason in self._map(tasks, progress):
            results[index] = values
            if values is None:
                log.warning("radiomics: region %d: %s; its features are NaN", index, reason)
            elif self.names is None:
                self.names = list(values)
        names = self.names
        if names is None:
            names = self._names_without_values()
        out = np.full((B, len(names)), np.nan)
        for i, values in results.items():
            if values is not None:
                out[i] = [values.get(n, np.nan) for n in names]
        return names, out

    def _names_without_values(self) -> list[str]:
        """Column names when no region produced values (all refused): known only for the Original image type."""
        if set(self.params.get("imageType") or {"Original": {}}) != {"Original"}:
            raise DataError("PyRadiomics refused every region; feature names of filtered image types are unknown")
        classes = {c: (f or None) for c, f in (self.params.get("featureClass") or {}).items() if c != "shape"}
        from radclr.radiomics.extract import feature_names

        return feature_names(classes or None)


def extract_pyradiomics(
    images,
    masks,
    *,
    settings: Settings | None = None,
    classes=None,
    spacing=None,
    params=None,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[str], torch.Tensor]:
    """PyRadiomics features of B 2-D regions -> ``(names, float64 [B, F])`` (the ``extract`` contract)."""
    d = pyradiomics_params(settings, classes, params)
    with PyRadiomicsEngine(d, jobs=jobs) as engine:
        names, values = engine.extract(images, masks, spacing, progress)
    return names, torch.from_numpy(values)
