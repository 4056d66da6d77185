"""Deterministic synthetic CT volumes with a segmented tumour whose look depends on its class -- for tests of the 3-D
(seed 004 §3.1, KiTS-like) path and for trying ``configs/seed004/kidney_volumes.yaml`` without data.

A case is a ``[D, H, W]`` float32 volume in Hounsfield-like units built from a seeded
:class:`numpy.random.Generator`: air (-1000) around an elliptic body of soft tissue (40) under a fat layer (-100),
an enhancing kidney (160) on a random side, and a tumour inside the kidney with Gaussian CT noise (sigma
:data:`NOISE_HU`) over everything. The tumour mask is the exact set of voxels the tumour occupies. Slice thickness
varies between cases (1.5 - 5 mm; in-plane 0.8 mm) and the tumour spans 1 - 11 slices, so both branches of seed
004's slice rule (fewer / more than 10 slices) occur.

=============  ==========================================================  =====================================
class          look                                                        shape
=============  ==========================================================  =====================================
``Solid``      homogeneous enhancing tumour, about 110 HU                  smooth ellipsoid
``Textured``   heterogeneous: 70 HU +- blotchy texture (sd ~45 HU)         lobulated (radius modulated +-30 %)
``Cystic``     fluid core (~5 HU) inside an enhancing rim (~110 HU)        ellipsoid
=============  ==========================================================  =====================================

:func:`write_phantom_volumes` writes the radclr folder format: ``images/case_XXX.nii.gz``, ``masks/case_XXX.nii.gz``
(uint8, 1 = tumour), ``labels.csv`` (one class per case, one case per patient), ``findings.txt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from radclr.data.loading import load_dataset
from radclr.errors import require_package

PHANTOM_VOLUME_FINDINGS = ("Solid", "Textured", "Cystic")
PHANTOM_VOLUME_VERSION = 1  # part of the cache folder name: bump when the generator's output changes
NOISE_HU = 10.0
SLICE_THICKNESS_MM = (1.5, 2.5, 3.0, 5.0)
IN_PLANE_MM = 0.8


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    n = gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return n / (n.std() + 1e-12)


def make_tumour_volume(kind: str, size: int = 48, depth: int = 16, rng: np.random.Generator | None = None):
    """One case: ``(volume float32 [depth, size, size] HU, mask bool, spacing (z, y, x) mm)`` (module docstring)."""
    if kind not in PHANTOM_VOLUME_FINDINGS:
        raise ValueError(f"tumour kind must be one of {list(PHANTOM_VOLUME_FINDINGS)}, got {kind!r}")
    if size < 32 or depth < 12:
        raise ValueError(f"phantom volumes need size >= 32 and depth >= 12, got size {size}, depth {depth}")
    rng = rng if rng is not None else np.random.default_rng(0)
    D, H, W = depth, size, size
    zz, yy, xx = np.mgrid[0:D, 0:H, 0:W].astype(np.float32)
    yn, xn = (yy + 0.5) / H, (xx + 0.5) / W
    body_r = np.sqrt(((yn - 0.5) / 0.40) ** 2 + ((xn - 0.5) / 0.46) ** 2)
    vol = np.full((D, H, W), -1000.0, dtype=np.float32)
    vol[body_r < 1.0] = -100.0  # fat layer
    vol[body_r < 0.88] = 40.0  # soft tissue
    side = 0.30 if rng.random() < 0.5 else 0.70
    kc = np.array([D / 2 + rng.uniform(-1, 1), H * (0.55 + rng.uniform(-0.03, 0.03)), W * side])
    kr = np.array([D * 0.45, H * 0.20, W * 0.14])
    kidney = ((zz - kc[0]) / kr[0]) ** 2 + ((yy - kc[1]) / kr[1]) ** 2 + ((xx - kc[2]) / kr[2]) ** 2 < 1.0
    vol[kidney] = 160.0

    rz = rng.uniform(0.6, 5.5)  # half-extent in slices: the tumour spans about 1 - 11 slices
    ry, rx = (rng.uniform(0.07, 0.13) * s for s in (H, W))
    cz = rng.uniform(rz, D - 1 - rz) if D - 1 - 2 * rz > 0 else (D - 1) / 2
    cy = kc[1] + rng.uniform(-0.3, 0.3) * kr[1]
    cx = kc[2] + rng.uniform(-0.3, 0.3) * kr[2]
    r = np.sqrt(((zz - cz) / rz) ** 2 + ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    if kind == "Textured":  # lobulated outline: the radius is modulated by smooth noise
        r = r / (1.0 + 0.3 * np.tanh(_smooth_noise(rng, (D, H, W), 2.0)))
    mask = r <= 1.0
    if not mask.any():  # a tumour always occupies at least its centre voxel
        mask[int(round(cz)), int(round(cy)), int(round(cx))] = True
    if kind == "Solid":
        tumour = np.full((D, H, W), 110.0, dtype=np.float32)
    elif kind == "Textured":
        tumour = 70.0 + 45.0 * _smooth_noise(rng, (D, H, W), 0.8)
    else:  # Cystic: fluid core, enhancing rim
        tumour = np.where(r < 0.65, 5.0, 110.0)
    vol[mask] = tumour[mask]
    vol += rng.normal(0.0, NOISE_HU, size=vol.shape).astype(np.float32)
    spacing = (float(SLICE_THICKNESS_MM[rng.integers(len(SLICE_THICKNESS_MM))]), IN_PLANE_MM, IN_PLANE_MM)
    return vol.astype(np.float32), mask, spacing


def _write_nifti(array: np.ndarray, spacing, path: Path) -> None:
    sitk = require_package("SimpleITK", package="SimpleITK", purpose="writing the phantom CT volumes (NIfTI)")

    img = sitk.GetImageFromArray(array)
    img.SetSpacing(tuple(float(s) for s in reversed(spacing)))  # SimpleITK: (x, y, z)
    sitk.WriteImage(img, str(path), useCompression=True)


def write_phantom_volumes(out_dir: str | Path, n: int = 36, size: int = 48, seed: int = 0, depth: int = 16,
                          findings: Sequence[str] | None = None):
    """Write ``n`` synthetic tumour cases (classes balanced, order shuffled) in the folder format; return the
    loaded :class:`~radclr.data.dataset.CXRDataset` (its ``masks`` map every case to its tumour mask).
    ``labels.csv`` is written last, so a folder with ``labels.csv`` is complete."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    findings = list(findings) if findings is not None else list(PHANTOM_VOLUME_FINDINGS)
    if not findings or any(f not in PHANTOM_VOLUME_FINDINGS for f in findings):
        raise ValueError(f"findings must be a non-empty subset of {list(PHANTOM_VOLUME_FINDINGS)}, got {findings}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kinds = [findings[i % len(findings)] for i in rng.permutation(n)]
    width = max(3, len(str(n - 1)))
    rows = []
    for i, kind in enumerate(kinds):
        vol, mask, spacing = make_tumour_volume(kind, size, depth, rng)
        name = f"case_{i:0{width}d}.nii.gz"
        _write_nifti(vol, spacing, out / "images" / name)
        _write_nifti(mask.astype(np.uint8), spacing, out / "masks" / name)
        rows.append((name, f"P{i:0{width}d}", kind, int(mask.any(axis=(1, 2)).sum())))
    (out / "findings.txt").write_text("\n".join(findings) + "\n")
    pd.DataFrame(rows, columns=["image", "patient_id", "labels", "tumour_slices"]).to_csv(out / "labels.csv",
                                                                                        index=False)
    return load_dataset(out, format="folder")
