"""Parity with PyRadiomics on real chest X-ray regions (../shared/data; skipped when absent).

* ``nih_community_boxes``: every third annotated Mass/Nodule box (91 of 273), binWidth 25 and binCount 32;
* ``nih_cxr14``: seeded random boxes of 8 to 200 pixels, a third of them touching the image border, and two
  512x512 regions from images upsampled 2x (the NIH copies are 384 px; PIL bicubic in 8 bits, as the benchmark).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_dataset
from radclr.boxes import boxes_to_masks
from radclr.radiomics import Settings, extract
from radclr.radiomics.agreement import compare
from optional_deps import require_module

require_module("radiomics")
logging.getLogger("radiomics").setLevel(logging.ERROR)
pytestmark = [pytest.mark.realdata, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
RTOL = 1e-4


def assert_engines_agree(images, masks, settings):
    names, t = extract(images, masks, settings=settings)
    ref_names, p = extract(images, masks, settings=settings, engine="pyradiomics")
    result = compare(names, t.numpy(), ref_names, p.numpy())
    bad = {k: v for k, v in result["worst_rel_error_per_feature"].items() if v > RTOL}
    assert not bad, f"features off by more than {RTOL}: {bad}"
    assert np.isfinite(t.numpy()).all()


@pytest.mark.parametrize("settings", [Settings(), Settings(bin_count=32)], ids=["binWidth25", "binCount32"])
def test_community_boxes(settings):
    from radclr.data import load_dataset

    ds = load_dataset(shared_dataset("nih_community_boxes"))
    boxes = ds.boxes.iloc[::3]
    cache, images, masks = {}, [], []
    for r in boxes.itertuples(index=False):
        i = ds.index_of(r.image_id)
        if i not in cache:
            cache[i] = ds.read(i).array
        img = cache[i]
        images.append(img)
        masks.append(boxes_to_masks([[r.x, r.y, r.w, r.h]], img.shape)[0].numpy())
    assert_engines_agree(np.stack(images), np.stack(masks), settings)


def _nih_images(n):
    from radclr.data import load_dataset

    ds = load_dataset(shared_dataset("nih_cxr14"))
    rng = np.random.default_rng(7)
    return [ds.read(int(i)).array for i in rng.choice(len(ds), n, replace=False)], rng


@pytest.mark.parametrize("settings", [Settings(), Settings(bin_count=32)], ids=["binWidth25", "binCount32"])
def test_random_boxes_on_nih_images(settings):
    arrays, rng = _nih_images(8)
    images, masks = [], []
    for k in range(24):
        img = arrays[k % len(arrays)]
        H, W = img.shape
        h, w = (int(v) for v in rng.integers(8, 201, 2))
        if k % 3 == 0:  # against an edge or a corner
            y = 0 if rng.random() < 0.5 else H - h
            x = int(rng.integers(0, W - w + 1)) if rng.random() < 0.5 else W - w
        else:
            y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        m = np.zeros((H, W), bool)
        m[y : y + h, x : x + w] = True
        images.append(img)
        masks.append(m)
    assert_engines_agree(np.stack(images), np.stack(masks), settings)


def test_512_regions_from_upsampled_nih_images():
    arrays, rng = _nih_images(2)
    images, masks = [], []
    for img in arrays:
        up = np.asarray(Image.fromarray(img.astype(np.uint8)).resize((768, 768), Image.BICUBIC), dtype=np.float32)
        y, x = (int(v) for v in rng.integers(0, 768 - 512 + 1, 2))
        m = np.zeros(up.shape, bool)
        m[y : y + 512, x : x + 512] = True
        images.append(up)
        masks.append(m)
    assert_engines_agree(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks)), Settings())
