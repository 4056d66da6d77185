"""Connected components of equal-valued pixels (radclr.ops.components) against scipy.ndimage.label."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from radclr.ops import component_stats, label_components
from radclr.ops.indexing import cumsum_int32, flatnonzero

STRUCTURE = {8: np.ones((3, 3), dtype=bool), 4: ndimage.generate_binary_structure(2, 1)}


def reference_labels(values: np.ndarray, connectivity: int) -> np.ndarray:
    """Plain-loop reference: scipy.ndimage.label per image and per value, labelled 1 + first row-major index."""
    out = np.zeros(values.shape, dtype=np.int64)
    for b in range(values.shape[0]):
        for value in np.unique(values[b]):
            if value == 0:
                continue
            labels, n = ndimage.label(values[b] == value, structure=STRUCTURE[connectivity])
            for k in range(1, n + 1):
                where = labels == k
                out[b][where] = np.flatnonzero(where.ravel())[0] + 1
    return out


def reference_stats(values: np.ndarray, connectivity: int) -> list[tuple[int, int, int, int]]:
    labels = reference_labels(values, connectivity)
    rows = []
    for b in range(values.shape[0]):
        for label in np.unique(labels[b]):
            if label == 0:
                continue
            where = labels[b] == label
            rows.append((b, int(values[b].ravel()[label - 1]), int(where.sum()), int(label)))
    return sorted(rows, key=lambda r: (r[0], r[3]))


def as_rows(c) -> list[tuple[int, int, int, int]]:
    return list(zip(c.batch.tolist(), c.value.tolist(), c.size.tolist(), c.label.tolist()))


def spiral(n: int) -> np.ndarray:
    """A one-pixel-wide square spiral (one long path that turns at every corner)."""
    a = np.zeros((n, n), dtype=np.int64)
    y, x, dy, dx = 0, 0, 0, 1
    for _ in range(n * n):
        a[y, x] = 1
        ny, nx = y + 2 * dy, x + 2 * dx
        if not (0 <= ny < n and 0 <= nx < n) or a[ny, nx]:
            dy, dx = dx, -dy
            ny, nx = y + 2 * dy, x + 2 * dx
            if not (0 <= ny < n and 0 <= nx < n) or a[ny, nx]:
                break
        a[y + dy, x + dx] = 1
        y, x = ny, nx
    return a


def serpentine(h: int, w: int, vertical: bool = False) -> np.ndarray:
    """Rows (or columns) joined alternately at the right and left end: a path of length ~h*w/2."""
    a = np.zeros((h, w), dtype=np.int64)
    a[::2] = 1
    for i, r in enumerate(range(1, h, 2)):
        a[r, -1 if i % 2 == 0 else 0] = 1
    return a.T.copy() if vertical else a


def staircase(n: int) -> np.ndarray:
    """A diagonal chain of pixels: connected only through corners (8-connectivity) -- one zone, or n with 4."""
    return np.eye(n, dtype=np.int64)[:, ::-1].copy()


@pytest.mark.parametrize("connectivity", [4, 8])
def test_random_batches_match_scipy(connectivity):
    rng = np.random.default_rng(0)
    for _ in range(25):
        b, h, w = rng.integers(1, 4), rng.integers(1, 24), rng.integers(1, 24)
        values = rng.integers(0, rng.integers(1, 5) + 1, size=(b, h, w))
        got = label_components(torch.from_numpy(values), connectivity).numpy()
        np.testing.assert_array_equal(got, reference_labels(values, connectivity))
        assert as_rows(component_stats(torch.from_numpy(values), connectivity)) == reference_stats(values, connectivity)


@pytest.mark.parametrize(
    "image",
    [spiral(41), serpentine(30, 37), serpentine(29, 40, vertical=True), staircase(33),
     np.indices((24, 24)).sum(0) % 2 + 1,  # checkerboard of two values
     np.kron(np.indices((6, 6)).sum(0) % 3 + 1, np.ones((4, 4), dtype=np.int64))],  # blocky three-value pattern
    ids=["spiral", "serpentine", "serpentine-vertical", "staircase", "checkerboard", "blocks"],
)
@pytest.mark.parametrize("connectivity", [4, 8])
def test_adversarial_shapes_match_scipy(image, connectivity):
    values = np.stack([image, image[::-1, ::-1].copy(), np.where(image > 0, 3, 0)])
    got = label_components(torch.from_numpy(values), connectivity).numpy()
    np.testing.assert_array_equal(got, reference_labels(values, connectivity))
    assert as_rows(component_stats(torch.from_numpy(values), connectivity)) == reference_stats(values, connectivity)


def test_known_counts():
    """Hand-checked cases: a spiral is one zone; corner-touching pixels join only with 8-connectivity."""
    s = torch.from_numpy(spiral(31))[None]
    stats = component_stats(s)
    assert len(stats) == 1 and int(stats.size[0]) == int(s.sum())
    diagonal = torch.from_numpy(staircase(10))[None]
    assert len(component_stats(diagonal, 8)) == 1
    assert len(component_stats(diagonal, 4)) == 10
    board = torch.from_numpy(np.indices((6, 6)).sum(0) % 2 + 1)[None]  # two values, diagonal neighbours equal
    assert sorted(component_stats(board, 8).size.tolist()) == [18, 18]
    assert len(component_stats(board, 4)) == 36


def test_batch_is_independent_of_neighbours():
    """Components never leak across images of a batch, even when their borders touch in memory."""
    rng = np.random.default_rng(1)
    values = rng.integers(0, 3, size=(5, 17, 13))
    values[:, 0, :] = values[:, -1, :] = 2  # same value on the touching first/last rows of consecutive images
    batched = label_components(torch.from_numpy(values)).numpy()
    for b in range(5):
        alone = label_components(torch.from_numpy(values[b : b + 1])).numpy()[0]
        np.testing.assert_array_equal(batched[b], alone)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_integer_dtypes(dtype):
    rng = np.random.default_rng(2)
    values = rng.integers(0, 4, size=(2, 15, 19))
    got = label_components(torch.from_numpy(values).to(dtype)).numpy()
    np.testing.assert_array_equal(got, reference_labels(values, 8))


def test_large_and_negative_values():
    rng = np.random.default_rng(3)
    values = rng.choice(np.array([0, -7, 300, 70000, -2**31 + 5]), size=(2, 16, 16))
    got = label_components(torch.from_numpy(values)).numpy()
    np.testing.assert_array_equal(got, reference_labels(values, 8))
    stats = component_stats(torch.from_numpy(values))
    assert set(stats.value.tolist()) <= {-7, 300, 70000, -2**31 + 5}


def test_background_only_and_empty_batches():
    assert len(component_stats(torch.zeros(3, 5, 4, dtype=torch.int64))) == 0
    assert int(label_components(torch.zeros(3, 5, 4, dtype=torch.int64)).abs().sum()) == 0
    assert label_components(torch.zeros(0, 5, 4, dtype=torch.int64)).shape == (0, 5, 4)
    assert len(component_stats(torch.zeros(0, 5, 4, dtype=torch.int64))) == 0


def test_single_pixel_and_full_image():
    one = torch.zeros(1, 7, 9, dtype=torch.int64)
    one[0, 3, 4] = 5
    assert as_rows(component_stats(one)) == [(0, 5, 1, 3 * 9 + 4 + 1)]
    full = torch.full((2, 6, 8), 2, dtype=torch.int64)
    assert as_rows(component_stats(full)) == [(0, 2, 48, 1), (1, 2, 48, 1)]


@pytest.mark.parametrize(
    "values, connectivity, message",
    [
        (torch.zeros(4, 4, dtype=torch.int64), 8, r"\[B, H, W\]"),
        (np.zeros((1, 4, 4)), 8, r"\[B, H, W\] tensor"),
        (torch.zeros(1, 4, 4), 8, "integers"),
        (torch.zeros(1, 4, 4, dtype=torch.bool), 8, "integers"),
        (torch.zeros(1, 4, 4, dtype=torch.int64), 6, "connectivity"),
    ],
)
def test_bad_input_raises(values, connectivity, message):
    with pytest.raises(ValueError, match=message):
        label_components(values, connectivity)
    with pytest.raises(ValueError, match=message):
        component_stats(values, connectivity)


def test_indexing_helpers():
    flags = torch.tensor([False, True, True, False, True])
    assert flatnonzero(flags).tolist() == [1, 2, 4]
    assert cumsum_int32(flags).tolist() == [0, 1, 2, 2, 3]
    assert cumsum_int32(flags).dtype == torch.int32
    with pytest.raises(ValueError, match="1-D bool"):
        flatnonzero(torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="1-D bool"):
        cumsum_int32(torch.ones(3))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(4)
    values = torch.from_numpy(rng.integers(0, 4, size=(3, 40, 33)))
    np.testing.assert_array_equal(label_components(values.cuda()).cpu().numpy(), label_components(values).numpy())
    assert as_rows(component_stats(values.cuda())) == as_rows(component_stats(values))
