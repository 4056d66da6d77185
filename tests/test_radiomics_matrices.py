"""Texture matrices and first-order values against hand-computed examples and plain-loop references.

The loops below are direct transcriptions of PyRadiomics' C code (``cmatrices.c``: calculate_glcm, run_diagonal,
calculate_gldm, calculate_ngtdm) -- slow and obviously right; the batched tensor versions must agree exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radclr.radiomics import Settings, extract
from radclr.radiomics.chunked import Group
from radclr.radiomics.discretize import prepare
from radclr.radiomics.glcm import glcm_matrices
from radclr.radiomics.gldm import dependence_matrices
from radclr.radiomics.glrlm import run_length_matrices
from radclr.radiomics.levels import gray_levels
from radclr.radiomics.neighbours import angles_2d, line_layout
from radclr.radiomics.ngtdm import tone_differences

ANGLES = [(1, 1), (1, 0), (1, -1), (0, 1)]


def batch_of(images, masks, **kw):
    b = prepare(torch.as_tensor(np.asarray(images, dtype=np.float64)), torch.as_tensor(np.asarray(masks)),
                Settings(bin_width=1.0, **kw))
    lv = gray_levels(b)
    return b, lv, Group(b, lv, 0, b.batch_size)


def loop_glcm(g, m, G):
    H, W = g.shape
    P = np.zeros((len(ANGLES), G, G), int)
    for a, (dy, dx) in enumerate(ANGLES):
        for r in range(H):
            for c in range(W):
                if m[r, c] and 0 <= r + dy < H and 0 <= c + dx < W and m[r + dy, c + dx]:
                    P[a, g[r, c] - 1, g[r + dy, c + dx] - 1] += 1
    return P


def loop_runs(g, m, G, direction):
    H, W = g.shape
    dy, dx = direction
    starts = [(r, 0 if dx >= 0 else W - 1) for r in range(H)] if dy == 0 else (
        [(0, c) for c in range(W)] + [(r, 0 if dx > 0 else W - 1) for r in range(1, H)] if dx != 0 else
        [(0, c) for c in range(W)])
    P = np.zeros((G, max(H, W)), int)
    for r, c in starts:
        gl, rl = -1, 0
        while 0 <= r < H and 0 <= c < W:
            if m[r, c]:
                if gl == g[r, c]:
                    rl += 1
                elif gl == -1:
                    gl, rl = g[r, c], 0
                else:
                    P[gl - 1, rl] += 1
                    gl, rl = g[r, c], 0
            elif gl > -1:
                P[gl - 1, rl] += 1
                gl = -1
            r, c = r + dy, c + dx
        if gl > -1:
            P[gl - 1, rl] += 1
    return P


def loop_dependence(g, m, G, alpha):
    H, W = g.shape
    P = np.zeros((G, 9), int)
    for r in range(H):
        for c in range(W):
            if not m[r, c]:
                continue
            dep = sum(1 for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy or dx) and 0 <= r + dy < H
                      and 0 <= c + dx < W and m[r + dy, c + dx] and abs(int(g[r, c]) - int(g[r + dy, c + dx])) <= alpha)
            P[g[r, c] - 1, dep] += 1
    return P


def loop_ngtdm(g, m, G):
    H, W = g.shape
    s = np.zeros(G)
    for r in range(H):
        for c in range(W):
            if not m[r, c]:
                continue
            nb = [g[r + dy, c + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                  if (dy or dx) and 0 <= r + dy < H and 0 <= c + dx < W and m[r + dy, c + dx]]
            if nb:
                s[g[r, c] - 1] += abs(g[r, c] - sum(nb) / len(nb))
    return s


def random_regions(seed, n=4, size=13, levels=5):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, levels, (n, size, size)).astype(float)
    masks = rng.random((n, size, size)) > 0.25
    masks[:, 0, 0] = masks[:, -1, -1] = True
    return images, masks


def test_glcm_counts_equal_a_plain_loop():
    images, masks = random_regions(0)
    b, lv, _ = batch_of(images, masks)
    P = glcm_matrices(lv.code, lv.size, ANGLES).numpy()
    for i in range(len(images)):
        g = b.binned[i].numpy()
        np.testing.assert_array_equal(P[i], loop_glcm(g, b.mask[i].numpy(), lv.size))


@pytest.mark.parametrize("seed", [1, 2])
def test_run_lengths_equal_a_plain_loop(seed):
    images, masks = random_regions(seed, size=11, levels=3)
    b, lv, _ = batch_of(images, masks)
    P, valid = run_length_matrices(lv.code, lv.size)
    assert bool(valid.all())
    for i in range(len(images)):
        g, m = b.binned[i].numpy(), b.mask[i].numpy()
        for a, direction in enumerate(angles_2d([1])):
            ref = loop_runs(g, m, lv.size, direction)
            np.testing.assert_array_equal(P[i, a].numpy(), ref[:, : P.shape[-1]], err_msg=f"{direction}")


def test_glrlm_example_from_the_pyradiomics_docs():
    image = np.array([[5, 2, 5, 4, 4], [3, 3, 3, 1, 3], [2, 1, 1, 1, 3], [4, 2, 2, 2, 3], [3, 5, 3, 3, 2]])
    _, lv, _ = batch_of(image[None] - 0.5, np.ones((1, 5, 5), bool))  # binWidth 1: bins 1..5
    P, _ = run_length_matrices(lv.code, lv.size)
    horizontal = angles_2d([1]).index((0, 1))
    expected = [[1, 0, 1, 0, 0], [3, 0, 1, 0, 0], [4, 1, 1, 0, 0], [1, 1, 0, 0, 0], [3, 0, 0, 0, 0]]
    np.testing.assert_array_equal(P[0, horizontal].numpy(), expected)


def test_angle_without_two_pixels_on_a_line_is_dropped():
    m = np.zeros((1, 6, 6), bool)
    m[0, ::2, ::2] = True  # isolated pixels: no two on a row/column, but diagonal lines hold several
    _, lv, _ = batch_of(np.arange(36.0).reshape(1, 6, 6), m)
    _, valid = run_length_matrices(lv.code, lv.size)
    by_angle = dict(zip(angles_2d([1]), valid[0].tolist()))
    assert by_angle == {(1, 1): True, (1, 0): True, (1, -1): True, (0, 1): True}
    m2 = np.zeros((1, 5, 5), bool)
    m2[0, 0, 0] = m2[0, 1, 2] = m2[0, 3, 1] = True  # every line holds one pixel at most
    _, lv2, _ = batch_of(np.ones((1, 5, 5)), m2)
    _, valid2 = run_length_matrices(lv2.code, lv2.size)
    assert not bool(valid2.any())


@pytest.mark.parametrize("alpha", [0, 1])
def test_dependence_counts_equal_a_plain_loop(alpha):
    images, masks = random_regions(3, levels=4)
    b, lv, group = batch_of(images, masks, gldm_a=alpha)
    P = dependence_matrices(group).numpy()
    for i in range(len(images)):
        np.testing.assert_array_equal(P[i], loop_dependence(b.binned[i].numpy(), b.mask[i].numpy(), lv.size, alpha))


def test_tone_differences_equal_a_plain_loop():
    images, masks = random_regions(4, levels=6)
    b, lv, group = batch_of(images, masks)
    s = tone_differences(group).numpy()
    for i in range(len(images)):
        np.testing.assert_allclose(s[i], loop_ngtdm(b.binned[i].numpy(), b.mask[i].numpy(), lv.size), rtol=1e-12)


def test_ngtdm_example_from_the_pyradiomics_docs():
    image = np.array([[1, 2, 5, 2], [3, 5, 1, 3], [1, 3, 5, 5], [3, 1, 1, 1]])
    b, lv, group = batch_of(image[None] - 0.5, np.ones((1, 4, 4), bool))
    assert lv.counts[0].tolist() == [6, 2, 4, 0, 4]  # n_i
    # the docs print s_3 = 2.63; by hand (and in PyRadiomics' own output) it is 0.6 + 0.6 + 0.5 + 4/3 = 3.0333
    np.testing.assert_allclose(tone_differences(group)[0].numpy(), [13.35, 2.0, 0.6 + 0.6 + 0.5 + 4 / 3, 0.0, 10.075],
                               rtol=1e-12)


def test_line_layout_lists_every_pixel_once_per_direction():
    x = torch.arange(1, 1 + 5 * 7).view(1, 5, 7)
    for d in angles_2d([1]):
        lines = line_layout(x, d, fill=0)
        assert sorted(lines[lines != 0].tolist()) == list(range(1, 36))


def test_first_order_by_hand():
    image = np.zeros((1, 4, 4))
    image[0, 1:3, 1:3] = [[1, 2], [3, 4]]
    mask = image > 0
    names, v = extract(image, mask, classes={"firstorder": None}, settings=Settings(bin_width=1.0, voxel_array_shift=0))
    f = dict(zip([n.split("_", 2)[2] for n in names], v[0].tolist()))
    assert f["Mean"] == 2.5 and f["Minimum"] == 1 and f["Maximum"] == 4 and f["Range"] == 3
    assert f["Energy"] == 30 and f["TotalEnergy"] == 30 and f["RootMeanSquared"] == pytest.approx(np.sqrt(7.5))
    assert f["Variance"] == pytest.approx(1.25) and f["MeanAbsoluteDeviation"] == 1.0
    assert f["Median"] == 2.5 and f["10Percentile"] == pytest.approx(1.3) and f["90Percentile"] == pytest.approx(3.7)
    assert f["InterquartileRange"] == pytest.approx(1.5)
    assert f["Skewness"] == pytest.approx(0.0, abs=1e-15)
    assert f["Kurtosis"] == pytest.approx(2.5625 / 1.5625)  # mu4 / sigma^4, not excess kurtosis
    assert f["Uniformity"] == 0.25 and f["Entropy"] == pytest.approx(2.0, abs=1e-12)
    assert f["RobustMeanAbsoluteDeviation"] == pytest.approx(0.5)  # values 2, 3 lie inside [1.3, 3.7]
