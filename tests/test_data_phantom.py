"""Synthetic phantoms: deterministic, chest-like, lesions visible above the noise at exactly recorded boxes."""

from __future__ import annotations

import numpy as np
import pytest

from radclr.data import load_dataset
from radclr.data.phantom import MIN_CONTRAST, NOISE_SIGMA, PHANTOM_FINDINGS, make_phantom, write_phantom_dataset


def _support_box(mask: np.ndarray):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1


def test_deterministic_and_seed_dependent():
    a = make_phantom(96, ["Mass", "Nodule"], np.random.default_rng(7))
    b = make_phantom(96, ["Mass", "Nodule"], np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] == ["Mass", "Nodule"] and a[2] == b[2]
    c = make_phantom(96, ["Mass", "Nodule"], np.random.default_rng(8))
    assert not np.array_equal(a[0], c[0])


def test_normal_image_is_chest_like():
    img, labels, boxes = make_phantom(128, [], np.random.default_rng(0))
    assert img.dtype == np.float32 and img.shape == (128, 128)
    assert labels == [] and boxes == []
    assert 0 <= img.min() and img.max() <= 255
    lung = img[40:80, 25:45].mean()  # left lung field
    mediastinum = img[40:80, 60:68].mean()  # spine / mediastinum
    outside = img[2:6, 2:6].mean()  # air outside the body
    assert outside < lung < mediastinum
    assert mediastinum - lung > 50
    # rib texture: the lung field is not flat (periodic bands), far above the noise
    assert img[30:90, 30:36].mean(axis=1).std() > 3 * NOISE_SIGMA / np.sqrt(6)  # 3 x the noise of a 6-px mean


@pytest.mark.parametrize("finding", PHANTOM_FINDINGS)
def test_lesion_box_is_exact_and_contrast_above_noise(finding):
    seed = 11
    normal, _, _ = make_phantom(128, [], np.random.default_rng(seed), noise_sigma=0)
    img, labels, boxes = make_phantom(128, [finding], np.random.default_rng(seed), noise_sigma=0)
    assert labels == [finding] and len(boxes) == 1 and boxes[0].label == finding
    diff = img - normal  # same anatomy (drawn first), no noise: the difference is the lesion alone
    changed = np.abs(diff) > 1e-4
    b = boxes[0]
    assert _support_box(changed) == (b.x, b.y, b.w, b.h)  # the box is exactly the lesion's extent
    assert diff[changed].mean() > MIN_CONTRAST * 0.8 > 10 * NOISE_SIGMA


def test_findings_have_distinct_size_and_texture():
    rng = np.random.default_rng(1)
    stats = {f: [] for f in PHANTOM_FINDINGS}
    for _ in range(12):
        for f in PHANTOM_FINDINGS:
            img, _, (b,) = make_phantom(128, [f], rng)
            x, y, w, h = int(b.x), int(b.y), int(b.w), int(b.h)
            crop = img[y:y + h, x:x + w]
            lap = np.abs(np.diff(crop, axis=0)).mean() + np.abs(np.diff(crop, axis=1)).mean()
            stats[f].append((w * h, lap, y + h / 2))
    area = {f: np.median([s[0] for s in v]) for f, v in stats.items()}
    rough = {f: np.median([s[1] for s in v]) for f, v in stats.items()}
    centre_y = {f: np.median([s[2] for s in v]) for f, v in stats.items()}
    assert area["Nodule"] * 5 < area["Mass"]  # small spot vs large blob
    assert rough["Infiltration"] > 1.5 * rough["Mass"]  # mottled vs smooth
    assert rough["Effusion"] < rough["Infiltration"]
    assert centre_y["Effusion"] > 64  # basal


def test_multilabel_and_bad_input():
    img, labels, boxes = make_phantom((96, 112), ["Effusion", "Nodule", "Mass"], np.random.default_rng(3))
    assert img.shape == (96, 112) and sorted(b.label for b in boxes) == ["Effusion", "Mass", "Nodule"]
    with pytest.raises(ValueError, match="unknown phantom finding"):
        make_phantom(64, ["Tumour"], np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 32"):
        make_phantom(16, [], np.random.default_rng(0))


def test_write_phantom_dataset_round_trip(tmp_path):
    ds = write_phantom_dataset(tmp_path / "ph", n=40, size=64, seed=5)
    assert len(ds) == 40 and ds.findings == list(PHANTOM_FINDINGS) and ds.problems == []
    again = load_dataset(tmp_path / "ph")
    np.testing.assert_array_equal(again.labels, ds.labels)
    counts = ds.label_counts()
    assert counts["No Finding"] > 0 and all(counts[f] > 0 for f in PHANTOM_FINDINGS)
    assert len(ds.boxes) == int(np.nansum(ds.labels))  # one box per lesion
    assert ds.records["patient_id"].nunique() < 40  # some patients have two images
    img = ds.read(0)
    assert img.shape == (64, 64) and img.meta["bit_depth"] == 8
    normal = np.flatnonzero(ds.is_normal())
    assert not ds.has_boxes()[normal].any()
    same = write_phantom_dataset(tmp_path / "ph2", n=40, size=64, seed=5)
    np.testing.assert_array_equal(same.read(7).array, ds.read(7).array)
    with pytest.raises(ValueError, match="subset"):
        write_phantom_dataset(tmp_path / "x", n=2, findings=["Pneumonia"])
