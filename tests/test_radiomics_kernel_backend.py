"""The CPU fast path (numba kernels, ``radclr.radiomics.kernel_backend``) against the torch reference path and PyRadiomics.

Every feature of the fast path must equal the torch path's within 1e-4 relative (in practice the two are
bit-identical: the kernels build the same integer matrices and the feature formulas are shared), with the same
NaN rows, on synthetic regions of many shapes -- degenerate ones included -- and every binning route. The kernels'
matrices are also compared with the torch builders directly. Deterministic, no timing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from radclr.errors import ConfigError
from radclr.radiomics import Settings, extract
from radclr.radiomics import kernel_backend, kernels
from optional_deps import require, require_module

require(kernels.AVAILABLE, f"numba not available: {kernels.REASON}")

RTOL = 1e-4
CANVAS = 40


def masks_zoo(rng) -> list[np.ndarray]:
    """Region shapes on a CANVAS x CANVAS image: ordinary, thin, degenerate, border-touching."""
    out = []

    def new():
        return np.zeros((CANVAS, CANVAS), bool)

    def add(*boxes, holes=(), where=None):
        m = new()
        for y0, y1, x0, x1 in boxes:
            m[y0:y1, x0:x1] = True
        for y0, y1, x0, x1 in holes:
            m[y0:y1, x0:x1] = False
        if where is not None:
            m |= where
        out.append(m)

    yy, xx = np.mgrid[0:CANVAS, 0:CANVAS]
    add((5, 25, 7, 30))  # rectangle
    blob = (((yy - 20) / 14) ** 2 + ((xx - 18) / 11) ** 2 <= 1) & (rng.random((CANVAS, CANVAS)) > 0.2)
    add(where=blob)  # blob with holes and ragged edges
    add((3, 30, 3, 8), (25, 30, 3, 35))  # L shape
    add((17, 18, 11, 12))  # single pixel (NaN row)
    add((9, 10, 4, 31))  # one row (NaN row: below minimumROIDimensions)
    add((2, 38, 30, 31))  # one column (NaN row)
    add((10, 12, 10, 12))  # 2 x 2
    diagonal = new()
    np.fill_diagonal(diagonal[5:25, 8:28], True)
    add(where=diagonal)  # diagonal line: no two pixels in a row/column
    checker = new()
    checker[4:16, 4:16] = (np.add.outer(np.arange(12), np.arange(12)) % 2) == 0
    add(where=checker)  # checkerboard
    add((0, 12, 0, 9))  # top-left corner
    add((CANVAS - 7, CANVAS, CANVAS - 13, CANVAS))  # bottom-right corner
    add((0, CANVAS, 0, CANVAS))  # whole image
    add((6, 30, 6, 30), holes=[(12, 24, 12, 24)])  # ring with a hole
    add((3, 9, 3, 9), (20, 26, 22, 30))  # two separate parts
    return out


def images_for(kind: str, rng, n: int) -> np.ndarray:
    shape = (n, CANVAS, CANVAS)
    if kind == "uint8":
        return rng.integers(0, 256, shape).astype(np.float64)
    if kind == "smooth":  # long runs and big zones
        base = np.cumsum(np.cumsum(rng.normal(0, 3, shape), 1), 2)
        return np.round(np.clip(base - base.min() + 10, 0, 255))
    if kind == "float":
        return rng.normal(80, 35, shape)
    if kind == "negative":
        return np.round(rng.normal(-300, 90, shape))
    if kind == "constant":
        return np.full(shape, 77.0)
    if kind == "gaps":  # two far-apart values: gray levels 1 and 5 at binWidth 25, levels 2-4 empty
        return np.where(rng.random(shape) < 0.5, 0.0, 110.0)
    raise ValueError(kind)


def compare(a: torch.Tensor, b: torch.Tensor, names) -> float:
    a, b = a.numpy(), b.numpy()
    assert np.array_equal(np.isnan(a), np.isnan(b)), "NaN pattern differs between the fast and the torch path"
    ok = ~np.isnan(b)
    rel = np.zeros_like(b)
    rel[ok] = np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-12)
    worst = float(rel.max()) if rel.size else 0.0
    i, j = np.unravel_index(np.argmax(rel), rel.shape) if rel.size else (0, 0)
    assert worst <= RTOL, f"region {i} {names[j]}: fast {a[i, j]!r}, torch {b[i, j]!r}"
    return worst


class Spy:
    """Counts the groups the fast path prepared (so a test knows the kernels really ran)."""

    def __init__(self, monkeypatch):
        self.used = 0
        original = kernel_backend.prepare_with_kernels

        def wrapped(*args, **kwargs):
            batch = original(*args, **kwargs)
            self.used += batch is not None
            return batch

        monkeypatch.setattr(kernel_backend, "prepare_with_kernels", wrapped)


def both(images, masks, spy=None, **kw):
    before = spy.used if spy else 0
    names, a = extract(torch.from_numpy(images), torch.from_numpy(masks), backend="numba", **kw)
    if spy is not None:
        assert spy.used > before, "the fast path did not run"
    names_t, b = extract(torch.from_numpy(images), torch.from_numpy(masks), backend="torch", **kw)
    assert names == names_t
    return names, a, b


@pytest.mark.parametrize("kind", ["uint8", "smooth", "float", "negative", "constant", "gaps"])
def test_fast_path_equals_torch_path_on_every_shape(kind, monkeypatch):
    rng = np.random.default_rng(sum(map(ord, kind)))
    ms = np.stack(masks_zoo(rng))
    images = images_for(kind, rng, len(ms))
    spy = Spy(monkeypatch)
    names, a, b = both(images, ms, spy)
    assert a.shape == (len(ms), 102)
    compare(a, b, names)
    assert np.isnan(a.numpy()[3]).all() and np.isnan(a.numpy()[4]).all()  # single pixel, one row: NaN rows
    assert not np.isnan(a.numpy()[0]).any()


@pytest.mark.parametrize(
    "settings",
    [
        Settings(bin_count=32),
        Settings(bin_count=7),
        Settings(bin_width=10.0),
        Settings(gldm_a=1.0),
        Settings(gldm_a=2.0, bin_width=10.0),
        Settings(symmetrical_glcm=False),
        Settings(voxel_array_shift=300.0),
        Settings(minimum_roi_dimensions=1),
        Settings(minimum_roi_size=30),
    ],
    ids=lambda s: ",".join(f"{k}={v}" for k, v in vars(s).items() if v != getattr(Settings(), k)),
)
def test_fast_path_equals_torch_path_for_settings(settings, monkeypatch):
    rng = np.random.default_rng(7)
    ms = np.stack(masks_zoo(rng))
    images = np.concatenate([images_for("uint8", rng, 7), images_for("float", rng, 7)])
    spy = Spy(monkeypatch)
    names, a, b = both(images, ms, spy, settings=settings)
    compare(a, b, names)


def test_nan_policy_and_spacing_match():
    rng = np.random.default_rng(3)
    ms = np.stack(masks_zoo(rng))
    images = images_for("uint8", rng, len(ms))
    images[0, 10, 10] = np.nan  # inside region 0: NaN row
    images[1, 0, 0] = np.inf  # outside region 1 (blob): ignored
    spacing = rng.uniform(0.5, 2.0, (len(ms), 2))
    names, a, b = both(images, ms, spacing=spacing)
    compare(a, b, names)
    assert np.isnan(a.numpy()[0]).all() and not np.isnan(a.numpy()[1]).any()


def test_float32_and_integer_inputs_and_class_subsets():
    rng = np.random.default_rng(5)
    ms = np.stack(masks_zoo(rng))
    images = images_for("uint8", rng, len(ms))
    for x in (images.astype(np.float32), images.astype(np.uint8), images.astype(np.int16)):
        names, a = extract(torch.from_numpy(x), torch.from_numpy(ms), backend="numba")
        _, b = extract(torch.from_numpy(images), torch.from_numpy(ms), backend="torch")
        compare(a, b, names)
    classes = {"glrlm": ["RunEntropy"], "firstorder": ["Median", "10Percentile"], "glszm": None}
    names, a, b = both(images, ms, classes=classes)
    compare(a, b, names)


def test_many_gray_levels_take_the_torch_path(monkeypatch):
    """Regions with more than 64 gray levels are outside the kernels' scope: the group goes the torch way."""
    rng = np.random.default_rng(11)
    ms = np.stack(masks_zoo(rng)[:3])
    images = rng.integers(0, 4096, ms.shape).astype(np.float64)
    spy = Spy(monkeypatch)
    names, a, b = both(images, ms)
    assert spy.used == 0
    compare(a, b, names)


def test_distances_other_than_one_take_the_torch_path():
    settings = Settings(glcm_distances=(1, 2))
    assert not kernel_backend.resolve_backend("auto", torch.device("cpu"), settings)
    rng = np.random.default_rng(2)
    ms = np.stack(masks_zoo(rng)[:4])
    images = images_for("uint8", rng, len(ms))
    names, a, b = both(images, ms, settings=settings)
    compare(a, b, names)


def test_results_do_not_depend_on_threads_or_grouping():
    rng = np.random.default_rng(9)
    ms = np.stack(masks_zoo(rng) * 3)
    images = images_for("smooth", rng, len(ms))
    x, m = torch.from_numpy(images), torch.from_numpy(ms)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _, one = extract(x, m, backend="numba")
        torch.set_num_threads(2)
        _, two = extract(x, m, backend="numba")
        _, small_groups = extract(x, m, backend="numba", batch_size=5)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(one.nan_to_num(-1.0), two.nan_to_num(-1.0))  # threads: bit-identical
    # other groups pad to other level counts, which changes the formulas' summation order only (as in torch)
    np.testing.assert_allclose(small_groups.numpy(), one.numpy(), rtol=1e-12, atol=0)


def test_kernel_matrices_equal_torch_builders():
    """GLCM/GLRLM/GLDM/NGTDM matrices and GLSZM zones of the kernels against the torch engine's builders."""
    from radclr.ops.components import component_stats
    from radclr.radiomics.chunked import Group
    from radclr.radiomics.discretize import bounding_boxes, prepare
    from radclr.radiomics.glcm import glcm_matrices
    from radclr.radiomics.gldm import dependence_matrices
    from radclr.radiomics.glrlm import run_length_matrices
    from radclr.radiomics.levels import gray_levels
    from radclr.radiomics.neighbours import angles_2d
    from radclr.radiomics.ngtdm import tone_differences

    rng = np.random.default_rng(4)
    ms = np.stack(masks_zoo(rng))
    images = torch.from_numpy(images_for("smooth", rng, len(ms)))
    masks = torch.from_numpy(ms)
    settings = Settings(gldm_a=0.0)
    boxes = bounding_boxes(masks)
    regions = np.arange(len(ms))
    fb = kernel_backend.prepare_with_kernels(images, masks, settings, None, regions, tuple(t.numpy() for t in boxes))
    tb = prepare(images, masks, settings, boxes=boxes)
    assert torch.equal(fb.binned.to(torch.int64), tb.binned) and torch.equal(fb.n_gray, tb.n_gray)
    assert torch.equal(fb.mask, tb.mask)
    lv = gray_levels(tb)
    G = lv.size
    assert fb.cache["gray_levels"].size == G and torch.equal(fb.cache["gray_levels"].counts, lv.counts)
    counts = fb.cache["counts"]
    group = Group(tb, lv, 0, len(ms))
    assert torch.equal(counts.get("glcm").to(torch.int64), glcm_matrices(lv.code, G, angles_2d([1])))
    P, multi = run_length_matrices(lv.code, G)
    Pf, multif = counts.get("glrlm")
    assert torch.equal(multif, multi)
    n = min(P.shape[-1], Pf.shape[-1])
    assert torch.equal(Pf[..., :n].to(torch.int64), P[..., :n])
    assert int(P[..., n:].sum()) == 0 and int(Pf[..., n:].sum()) == 0
    assert torch.equal(counts.get("gldm").to(torch.int64), dependence_matrices(group))
    # NGTDM: the tone differences s_i from the kernel's sums equal the torch path's
    fgroup = Group(fb, fb.cache["gray_levels"], 0, len(ms))
    assert torch.equal(tone_differences(fgroup), tone_differences(group))
    zf, zt = counts.get("glszm"), component_stats(lv.code, connectivity=8)
    rows = lambda z: sorted(zip(z.batch.tolist(), z.value.tolist(), z.size.tolist()))  # noqa: E731
    assert rows(zf) == rows(zt)


def test_backend_switch_and_errors(monkeypatch):
    cpu = torch.device("cpu")
    s = Settings()
    assert kernel_backend.resolve_backend(None, cpu, s)
    assert not kernel_backend.resolve_backend("torch", cpu, s)
    monkeypatch.setenv("RADCLR_RADIOMICS_BACKEND", "torch")
    assert not kernel_backend.resolve_backend(None, cpu, s)
    assert kernel_backend.resolve_backend("numba", cpu, s)  # the argument wins over the environment
    monkeypatch.setenv("RADCLR_RADIOMICS_BACKEND", "fastest")
    with pytest.raises(ConfigError, match="RADCLR_RADIOMICS_BACKEND"):
        kernel_backend.resolve_backend(None, cpu, s)
    with pytest.raises(ConfigError, match="unknown radiomics backend"):
        extract(np.ones((1, 4, 4)), np.ones((1, 4, 4), bool), backend="fortran")
    with pytest.raises(ConfigError, match="CPU"):
        kernel_backend.resolve_backend("numba", torch.device("cuda"), s)
    assert not kernel_backend.resolve_backend("auto", torch.device("cuda"), s)


def test_missing_numba_falls_back_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    monkeypatch.setattr(kernels, "REASON", "No module named 'numba'")
    monkeypatch.setattr(kernel_backend, "_warned_missing", False)
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8)).astype(np.float64)
    masks = np.ones((2, 8, 8), bool)
    with caplog.at_level(logging.WARNING, logger="radclr.radiomics.kernel_backend"):
        _, a = extract(images, masks)
        _, b = extract(images, masks)
    lines = [r for r in caplog.records if "numba" in r.getMessage()]
    assert len(lines) == 1 and "torch path" in lines[0].getMessage()
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="needs numba"):
        extract(images, masks, backend="numba")


def test_fast_path_matches_pyradiomics():
    """A handful of regions straight against PyRadiomics (the parity tests run the default backend too)."""
    require_module("radiomics")
    from test_radiomics_parity import assert_parity

    rng = np.random.default_rng(12)
    # left out: the shapes PyRadiomics refuses, and the diagonal line whose Elongation PyRadiomics gives as
    # eigen-solver noise (documented in shape2d.py)
    ms = np.stack([m for k, m in enumerate(masks_zoo(rng)) if k not in (3, 4, 5, 7)])
    images = np.concatenate([images_for("uint8", rng, 6), images_for("float", rng, len(ms) - 6)])
    names, values = extract(torch.from_numpy(images), torch.from_numpy(ms), backend="numba")
    assert_parity(names, values, images, ms, binWidth=25)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_torch_path_equals_cpu_fast_path():
    """The torch engine on CUDA against the CPU fast path, same regions (run by scripts/gpu_check.sh)."""
    rng = np.random.default_rng(13)
    ms = np.stack(masks_zoo(rng))
    images = np.concatenate([images_for("smooth", rng, 7), images_for("float", rng, 7)])
    names, a = extract(torch.from_numpy(images), torch.from_numpy(ms), backend="numba")
    _, b = extract(torch.from_numpy(images), torch.from_numpy(ms), device="cuda")
    assert b.device.type == "cuda"
    compare(b.cpu(), a, names)


def test_torch_threads_restored_and_fork_safe_pool():
    """extract leaves torch's thread count as it was; a forked child gets a working kernel pool."""
    import multiprocessing as mp

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        rng = np.random.default_rng(1)
        ms = np.stack(masks_zoo(rng)[:3] * 4)
        images = images_for("uint8", rng, len(ms))
        _, a = extract(images, ms, backend="numba")  # starts the pool with 2 threads
        assert torch.get_num_threads() == 2
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as pool:
            b = pool.apply_async(_extract_in_child, (images, ms)).get(timeout=120)  # a stale pool would hang
        np.testing.assert_array_equal(np.nan_to_num(b, nan=-1.0), np.nan_to_num(a.numpy(), nan=-1.0))
    finally:
        torch.set_num_threads(previous)


def _extract_in_child(images, masks):
    torch.set_num_threads(2)
    return extract(images, masks, backend="numba")[1].numpy()


def test_jit_cost_measures_compile_and_cached_load_in_fresh_processes(monkeypatch):
    """The benchmark's first-call cost runs in subprocesses: it must import the kernels' module (not the package's
    ``extract`` function of the same name) and report a compile and a cached load."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from radiomics_runner import jit_cost

    cost = jit_cost()
    assert set(cost) == {"cold_compile", "cached"}
    for r in cost.values():
        assert r["warm_up_s"] > 0 and r["process_s"] >= r["warm_up_s"]
