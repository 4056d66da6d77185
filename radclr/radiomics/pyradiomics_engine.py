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

3-D volumes (seed 004 §2.3/§3.1: radiomics of the CT tumour volume) go through :func:`extract_pyradiomics_volumes`:
each case is a ``[D, H, W]`` float64 SimpleITK image with the volume's own voxel spacing, ``force2D=False``, and
the 3-D ``shape`` class in place of ``shape2D`` (:func:`pyradiomics_params` with ``volume=True``); cases may
differ in shape. The same bounding-box crop (plus one voxel of background) and degenerate-region policy apply.

Degenerate regions follow radclr's policy (``radclr.radiomics.discretize``): an empty mask raises
:class:`~radclr.errors.DataError`; NaN/inf intensities inside the region, and regions PyRadiomics refuses
(single pixel, 1-pixel-wide line), give a NaN row and a logged reason.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable

import numpy as np
import torch

from radclr.errors import ConfigError, DataError, require_package
from radclr.radiomics.base import Settings
from radclr.radiomics.params import load_params
from radclr.radiomics.registry import CLASS_ORDER, feature_names, resolve_classes

__all__ = ["PyRadiomicsEngine", "extract_pyradiomics", "extract_pyradiomics_volumes", "pyradiomics_params"]

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


def _volume_classes(classes) -> dict:
    """PyRadiomics ``featureClass`` for 3-D volumes: the 2-D selection rules, with the 3-D ``shape`` class.

    None = every class (``shape`` first); a list/mapping may name ``shape`` (its features as PyRadiomics names
    them, checked by PyRadiomics); ``shape2D`` is refused (PyRadiomics would skip it on 3-D input, silently).
    """
    if classes is None:
        return {"shape": [], **{c: [] for c in CLASS_ORDER if c != "shape2D"}}
    spec = {classes: None} if isinstance(classes, str) else dict(classes) if isinstance(classes, dict) \
        else {c: None for c in classes}
    if "shape2D" in spec:
        raise ConfigError("feature class 'shape2D' is 2-D; for 3-D volumes use 'shape' (PyRadiomics' 3-D shape)")
    shape = spec.pop("shape", False)
    out = {"shape": list(shape or [])} if shape is not False else {}
    out.update({c: list(f) for c, f in resolve_classes(spec)} if spec else {})
    return out


def pyradiomics_params(settings: Settings | None = None, classes=None, params=None, *, volume: bool = False) -> dict:
    """The PyRadiomics parameter dictionary for radclr settings/classes, or for a parameter file (``params``).

    ``volume=True``: for 3-D ``[D, H, W]`` input -- the ``shape`` class instead of ``shape2D`` (a parameter
    file naming ``shape2D`` is refused; one without ``featureClass`` gets PyRadiomics' default, which on 3-D
    input is every class with ``shape``).
    """
    if params is not None:
        d = load_params(params).pyradiomics_dict()
        if volume and "shape2D" in (d.get("featureClass") or {}):
            raise ConfigError("featureClass shape2D in the parameter file: 2-D shape; for 3-D volumes use shape")
    else:
        settings = settings or Settings()
        if volume:
            feature_classes = _volume_classes(classes)
        elif classes is None:
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
    # PyRadiomics: heavy, and only needed when this engine runs
    radiomics = require_package("radiomics", package="pyradiomics-bhklab", purpose="the PyRadiomics engine")
    featureextractor = require_package("radiomics.featureextractor", package="pyradiomics-bhklab",
                                       purpose="the PyRadiomics engine")

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
    sitk = require_package("SimpleITK", package="SimpleITK", purpose="the PyRadiomics engine")

    extractor = extractor if extractor is not None else _EXTRACTOR

    out = []
    for index, image, mask, spacing in tasks:
        try:
            img = sitk.GetImageFromArray(image)
            msk = sitk.GetImageFromArray(mask)
            itk_spacing = tuple(float(v) for v in reversed(spacing))  # SimpleITK: (x, y[, z]) = (col, row[, slice])
            img.SetSpacing(itk_spacing)
            msk.SetSpacing(itk_spacing)
            result = extractor.execute(img, msk)
            values = {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}
            out.append((index, values, None))
        except (ValueError, ZeroDivisionError, IndexError) as e:
            # PyRadiomics refuses the region (e.g. a single pixel, a 1-pixel line): NaN row, reason logged;
            # anything else (environment, SimpleITK, memory) propagates instead of becoming a table of NaNs
            out.append((index, None, f"PyRadiomics: {type(e).__name__}: {e}"))
    return out


def _region_task(index: int, image: np.ndarray, mask: np.ndarray, spacing, crop: bool):
    """The (image, mask) PyRadiomics gets for one region (float64 image, uint8 mask with background); 2-D or 3-D."""
    if crop:
        idx = np.nonzero(mask)
        box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in idx)
        image = image[box]
        mask = mask[box]
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
        # made here even with worker processes: a missing PyRadiomics / SimpleITK is one line in this process
        self._extractor = _make_extractor(params)
        require_package("SimpleITK", package="SimpleITK", purpose="the PyRadiomics engine")
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

    def extract(self, images, masks, spacing=None, progress: Callable[[int], None] | None = None, region_names=None):
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
                log.warning("radiomics: %s: NaN or infinite intensity inside the region; its features are NaN",
                            region_name(region_names, i))
                if progress:
                    progress(1)
                continue
            tasks.append(_region_task(i, images[i], masks[i], spacing[i], self.crop))
        for index, values, reason in self._map(tasks, progress):
            results[index] = values
            if values is None:
                log.warning("radiomics: %s: %s; its features are NaN", region_name(region_names, index), reason)
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

    def extract_volumes(self, volumes, masks, spacings=None, progress: Callable[[int], None] | None = None):
        """3-D cases (lists of ``[D, H, W]`` arrays, shapes may differ) -> ``(names, float64 numpy [B, F])``.

        ``spacings``: per case ``(z, y, x)`` voxel spacing in mm (array-axis order; default 1). Build the engine
        with ``pyradiomics_params(..., volume=True)``. Empty mask: DataError; NaN intensities inside the
        region or a region PyRadiomics refuses: a NaN row with a logged reason (as for 2-D regions).
        """
        volumes, masks = list(volumes), list(masks)
        if len(volumes) != len(masks):
            raise ValueError(f"got {len(volumes)} volumes but {len(masks)} masks")
        spacings = [(1.0, 1.0, 1.0)] * len(volumes) if spacings is None else list(spacings)
        if len(spacings) != len(volumes):
            raise ValueError(f"got {len(volumes)} volumes but {len(spacings)} spacings")
        results: dict[int, dict | None] = {}
        tasks = []
        for i, (v, m, sp) in enumerate(zip(volumes, masks, spacings)):
            v, m = np.asarray(v), np.asarray(m) != 0
            if v.ndim != 3 or m.shape != v.shape or len(sp) != 3:
                raise ValueError(f"case {i}: volume and mask must both be [D, H, W] with a (z, y, x) spacing; got "
                                 f"volume {v.shape}, mask {m.shape}, spacing {tuple(sp)}")
            if not m.any():
                raise DataError(f"case {i} has an empty mask: nothing to compute radiomics on")
            if not np.isfinite(v[m]).all():
                results[i] = None
                log.warning("radiomics: case %d: NaN or infinite intensity inside the region; its features are NaN", i)
                if progress:
                    progress(1)
                continue
            tasks.append(_region_task(i, v, m, sp, self.crop))
        for index, values, reason in self._map(tasks, progress):
            results[index] = values
            if values is None:
                log.warning("radiomics: case %d: %s; its features are NaN", index, reason)
            elif self.names is None:
                self.names = list(values)
        if self.names is None:
            raise DataError("PyRadiomics refused every volume (see the logged reasons); no feature names to report")
        out = np.full((len(volumes), len(self.names)), np.nan)
        for i, values in results.items():
            if values is not None:
                out[i] = [values.get(n, np.nan) for n in self.names]
        return list(self.names), out

    def _names_without_values(self) -> list[str]:
        """Column names when no region produced values (all refused): known only for the Original image type."""
        if set(self.params.get("imageType") or {"Original": {}}) != {"Original"}:
            raise DataError("PyRadiomics refused every region; feature names of filtered image types are unknown")
        classes = {c: (f or None) for c, f in (self.params.get("featureClass") or {}).items() if c != "shape"}
        return feature_names(classes or None)


def region_name(names, index: int) -> str:
    """How a logged reason names region ``index``: ``names[index]`` when the caller named its regions."""
    return str(names[index]) if names is not None else f"region {index}"


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
    region_names=None,
) -> tuple[list[str], torch.Tensor]:
    """PyRadiomics features of B 2-D regions -> ``(names, float64 [B, F])`` (the ``extract`` contract)."""
    d = pyradiomics_params(settings, classes, params)
    with PyRadiomicsEngine(d, jobs=jobs) as engine:
        names, values = engine.extract(images, masks, spacing, progress, region_names)
    return names, torch.from_numpy(values)


def extract_pyradiomics_volumes(
    volumes,
    masks,
    *,
    spacings=None,
    settings: Settings | None = None,
    classes=None,
    params=None,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[str], np.ndarray]:
    """PyRadiomics features of B 3-D regions (seed 004 §2.3: the tumour volume) -> ``(names, float64 [B, F])``.

    volumes / masks: sequences of ``[D, H, W]`` arrays (float intensities, e.g. HU; boolean/label masks), one
    per case, shapes may differ between cases. spacings: ``(z, y, x)`` mm per case (None = 1). settings /
    classes / params: as for :func:`extract_pyradiomics`, with the 3-D ``shape`` class (``classes=None``: all
    classes -- ``shape``, firstorder, glcm, gldm, glrlm, glszm, ngtdm). jobs: worker processes.
    """
    d = pyradiomics_params(settings, classes, params, volume=True)
    with PyRadiomicsEngine(d, jobs=jobs) as engine:
        return engine.extract_volumes(volumes, masks, spacings, progress)
