"""CAM -> boxes (seed 001 §3.2): exact boxes on synthetic maps with known blobs, every threshold mode, selection
strategy and fallback, the options object and bad input (box geometry itself: test_boxes.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radclr.boxes import boxes_to_masks
from radclr.cam.boxes import cam_to_boxes, count_fallbacks, normalize_cam, upsample_cam
from radclr.cam.options import CamOptions


def xywh(b):
    return (b.x, b.y, b.w, b.h)


def two_blobs():
    """A 20x24 map: a big dim blob (rows 2-7, cols 1-8, value 0.6) and a small bright one (rows 12-14,
    cols 15-18, value 1.0), separated by zeros."""
    m = np.zeros((20, 24))
    m[2:8, 1:9] = 0.6
    m[12:15, 15:19] = 1.0
    return m


# --- map utilities ------------------------------------------------------------------------------------------
def test_normalize_cam_min_max_and_constant_maps():
    cam = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[4.0, 4.0], [4.0, 4.0]]])
    out = normalize_cam(cam)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))  # constant -> zeros, no NaN
    np.testing.assert_allclose(normalize_cam(np.array([[2.0, 4.0]])), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="NaN"):
        normalize_cam(torch.tensor([[float("nan"), 1.0]]))


def test_upsample_cam_bilinear_align_corners_false():
    cam = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    up = upsample_cam(cam, (4, 4))
    ref = torch.nn.functional.interpolate(cam[None, None], size=(4, 4), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(up, ref)
    assert up[0, 0] == 0.0 and up[0, 1] == 0.25  # the align_corners=False sample positions
    assert upsample_cam(np.zeros((2, 3, 7, 7)), (14, 28)).shape == (2, 3, 14, 28)


# --- thresholds -----------------------------------------------------------------------------------------------
def test_single_blob_exact_box_in_pixel_edge_convention():
    m = np.zeros((10, 12))
    m[2:5, 3:7] = 1.0  # rows 2..4, cols 3..6
    (b,) = cam_to_boxes(m)
    assert xywh(b) == (3, 2, 4, 3) and b.area == 12 and b.score == 1.0 and not b.fallback


def test_relative_mode_uses_fraction_of_max():
    m = two_blobs()
    assert [xywh(b) for b in cam_to_boxes(m, threshold=0.5, select="all")] == [(15, 12, 4, 3), (1, 2, 8, 6)]
    assert [xywh(b) for b in cam_to_boxes(m, threshold=0.7, select="all")] == [(15, 12, 4, 3)]
    # relative = fraction of each map's own max: scaling the map does not change the boxes
    assert cam_to_boxes(m * 37.0, threshold=0.7, select="all")[0].score == pytest.approx(37.0)


def test_absolute_mode_uses_map_units():
    m = two_blobs() * 10
    assert [xywh(b) for b in cam_to_boxes(m, mode="absolute", threshold=5.0, select="all")] == [
        (15, 12, 4, 3), (1, 2, 8, 6)]
    assert [xywh(b) for b in cam_to_boxes(m, mode="absolute", threshold=7.0, select="all")] == [(15, 12, 4, 3)]
    fb = cam_to_boxes(m, mode="absolute", threshold=11.0)
    assert fb[0].fallback


def test_percentile_mode_keeps_top_fraction_and_ignores_the_zero_floor():
    m = np.arange(100, dtype=float).reshape(10, 10)  # values 0..99 row-major
    (b,) = cam_to_boxes(m, mode="percentile", threshold=0.9)  # quantile 89.1 -> values 90..99 = last row
    assert xywh(b) == (0, 9, 10, 1) and b.area == 10
    # a ReLU CAM that is 0 on 95 % of pixels: the 0.9-quantile is 0, but zero pixels never count as "on"
    sparse = np.zeros((20, 20))
    sparse[3:7, 4:9] = 0.5
    (b,) = cam_to_boxes(sparse, mode="percentile", threshold=0.9)
    assert xywh(b) == (4, 3, 5, 4)


def test_constant_or_zero_maps_fall_back_in_every_mode():
    for mode, thr in (("relative", 0.5), ("absolute", 0.0), ("percentile", 0.5)):
        for m in (np.zeros((6, 8)), np.full((6, 8), 3.0)):
            (b,) = cam_to_boxes(m, mode=mode, threshold=thr)
            assert b.fallback and xywh(b) == (0, 0, 8, 6), mode


# --- selection -------------------------------------------------------------------------------------------------
def test_selection_strategies_on_two_separated_blobs():
    m = two_blobs()
    (largest,) = cam_to_boxes(m, threshold=0.5, select="largest")
    (best,) = cam_to_boxes(m, threshold=0.5, select="max_mean")
    assert xywh(largest) == (1, 2, 8, 6) and largest.area == 48 and largest.score == pytest.approx(0.6)
    assert xywh(best) == (15, 12, 4, 3) and best.score == pytest.approx(1.0)
    everything = cam_to_boxes(m, threshold=0.5, select="all")
    assert [b.score for b in everything] == sorted([b.score for b in everything], reverse=True)
    # "all above a score": min_score filters before selection
    assert [xywh(b) for b in cam_to_boxes(m, threshold=0.5, select="all", min_score=0.8)] == [(15, 12, 4, 3)]
    assert xywh(cam_to_boxes(m, threshold=0.5, select="largest", min_area=49)[0]) == (0, 0, 24, 20)  # fallback


def test_score_mean_vs_max():
    m = np.zeros((8, 8))
    m[1:4, 1:4] = [[0.5, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 0.5]]
    assert cam_to_boxes(m, threshold=0.4)[0].score == pytest.approx(5.0 / 9)
    assert cam_to_boxes(m, threshold=0.4, score="max")[0].score == 1.0


def test_connectivity_8_joins_diagonal_pixels_4_does_not():
    m = np.zeros((6, 6))
    m[1, 1] = m[2, 2] = m[3, 3] = 1.0
    assert [xywh(b) for b in cam_to_boxes(m, select="all", connectivity=8)] == [(1, 1, 3, 3)]
    assert len(cam_to_boxes(m, select="all", connectivity=4)) == 3


# --- fallback ----------------------------------------------------------------------------------------------------
def test_fallback_boxes_are_flagged_and_counted():
    maps = np.zeros((3, 10, 20))
    maps[0, 4:6, 5:9] = 1.0
    whole = cam_to_boxes(maps, fallback="whole")
    center = cam_to_boxes(maps, fallback="center", center_fraction=0.5)
    none = cam_to_boxes(maps, fallback="none")
    assert xywh(whole[1][0]) == (0, 0, 20, 10) and whole[1][0].fallback
    assert xywh(center[2][0]) == (5, 2, 10, 5) and center[2][0].fallback
    assert none[1] == [] and none[2] == [] and xywh(none[0][0]) == (5, 4, 4, 2)
    assert count_fallbacks(whole) == count_fallbacks(center) == count_fallbacks(none) == 2


def test_batched_maps_are_labelled_independently():
    """Blobs at the same place in neighbouring maps must not merge (one label call covers the batch)."""
    maps = np.zeros((2, 8, 8))
    maps[0, 2:4, 2:4] = 1.0
    maps[1, 3:6, 3:6] = 1.0
    out = cam_to_boxes(torch.as_tensor(maps))
    assert xywh(out[0][0]) == (2, 2, 2, 2) and xywh(out[1][0]) == (3, 3, 3, 3)


def test_boxes_from_upsampled_7x7_cam_land_on_the_blob():
    cam = torch.zeros(1, 7, 7)
    cam[0, 1:3, 4:6] = 1.0  # cells (rows 1-2, cols 4-5) -> image pixels rows 32-95, cols 128-191 at 224
    (b,) = cam_to_boxes(upsample_cam(cam, (224, 224)), threshold=0.5)[0]
    assert abs(b.x - 128) <= 16 and abs(b.y - 32) <= 16 and abs(b.w - 64) <= 16 and abs(b.h - 64) <= 16


# --- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "otsu"}, "mode must be one of"),
        ({"select": "best"}, "select must be one of"),
        ({"fallback": "random"}, "fallback must be one of"),
        ({"connectivity": 6}, "connectivity must be 4 or 8"),
        ({"mode": "relative", "threshold": 1.5}, "relative threshold"),
        ({"mode": "percentile", "threshold": 90}, r"quantile in \[0, 1\)"),
        ({"min_area": 0}, "min_area"),
        ({"score": "median"}, "score must be"),
    ],
)
def test_bad_options_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cam_to_boxes(np.zeros((4, 4)), **kwargs)


def test_bad_maps_raise():
    with pytest.raises(ValueError, match=r"cam must be \[H, W\] or \[B, H, W\]"):
        cam_to_boxes(np.zeros((2, 2, 4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        cam_to_boxes(np.full((4, 4), np.nan))


def test_boxes_cover_exactly_the_component_pixels():
    m = two_blobs()
    boxes = cam_to_boxes(m, threshold=0.5, select="all")
    np.testing.assert_array_equal(boxes_to_masks(boxes, m.shape).any(0).numpy(), m > 0)  # rectangular blobs


def test_cam_options_equal_the_keywords_and_validate():
    m = two_blobs()
    opts = CamOptions(threshold=0.8, mode="relative", select="max_mean", fallback="none")
    assert cam_to_boxes(m, opts) == cam_to_boxes(m, threshold=0.8, mode="relative", select="max_mean", fallback="none")
    assert CamOptions.from_dict({**opts.to_dict(), "extra": 1}) == opts
    assert opts.with_threshold(0.3).threshold == 0.3 and opts.threshold == 0.8
    with pytest.raises(ValueError, match="relative CAM threshold"):
        CamOptions(threshold=1.5)
    with pytest.raises(ValueError, match="CAM mode"):
        CamOptions(mode="otsu")


class _IdentityEncoder(torch.nn.Module):
    """Grad-CAM of this encoder + a unit linear head is the (ReLU of the) image itself."""

    def forward_features(self, x):
        return x

    def pool(self, fmap):
        return fmap.mean(dim=(2, 3))


def test_per_finding_calibration_fits_each_finding_its_own_cut():
    from radclr.cam.calibrate import calibrate_cam_threshold

    imgs, targets, gts = [], [], []
    for k in range(6):  # "Small": a bright 4x4 lesion inside a dimmer 12x12 halo -> a high cut
        a = torch.zeros(24, 24)
        a[4:16, 4:16] = 0.6
        a[8 + k % 2:12 + k % 2, 8:12] = 1.0
        imgs.append(a), targets.append(0), gts.append(np.array([[8.0, 8 + k % 2, 4.0, 4.0]]))
    for k in range(6):  # "Big": a faint 12x12 lesion with a bright core -> a low cut
        a = torch.zeros(24, 24)
        a[4:16, 4:16] = 0.35
        a[9:11, 9:11] = 1.0
        imgs.append(a), targets.append(1), gts.append(np.array([[4.0, 4.0, 12.0, 12.0]]))
    images = torch.stack(imgs)[:, None]
    head = torch.nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        head.weight.fill_(1.0)
    cal = calibrate_cam_threshold(_IdentityEncoder(), head, images, torch.tensor(targets), gts, CamOptions(),
                                  per_finding=True, findings=["Small", "Big"])
    assert cal.per_finding["Small"]["threshold"] >= 0.7 and cal.per_finding["Small"]["mean_iou"] == 1.0
    assert cal.per_finding["Big"]["threshold"] <= 0.35 and cal.per_finding["Big"]["mean_iou"] == 1.0
    opts = cal.apply(CamOptions())
    assert opts.for_finding("Small").threshold >= 0.7 and opts.for_finding("Big").threshold <= 0.35
    assert opts.for_finding("Other").threshold == cal.threshold  # no fit: the pooled threshold
    few = calibrate_cam_threshold(_IdentityEncoder(), head, images[:8], torch.tensor(targets[:8]), gts[:8],
                                  CamOptions(), per_finding=True, findings=["Small", "Big"])
    assert set(few.per_finding) == {"Small"}  # "Big" has 2 < 5 cases: keeps the pooled threshold


@pytest.mark.parametrize("select", ["largest", "max_mean", "all"])
@pytest.mark.parametrize("mode, threshold", [("relative", 0.5), ("relative", 0.85), ("percentile", 0.9),
                                             ("absolute", 0.3)])
@pytest.mark.parametrize("fallback", ["whole", "center", "none"])
def test_box_tensor_path_equals_the_component_path(select, mode, threshold, fallback):
    """BYOP's on-device boxes (torch connected components) are the first box of cam_to_boxes, fallbacks included."""
    from radclr.cam.boxes import cam_to_box_tensor

    small = torch.relu(torch.randn(24, 8, 8, generator=torch.Generator().manual_seed(7)))
    small[3] = 0.0  # no information: fallback
    cam = upsample_cam(small, (48, 48))
    cam[5] = 1.0  # constant: fallback
    opts = CamOptions(threshold=threshold, mode=mode, select=select, fallback=fallback)
    ref = cam_to_boxes(cam, opts)
    boxes, fell_back = cam_to_box_tensor(cam, opts)
    for i, r in enumerate(ref):
        if r:
            np.testing.assert_allclose(boxes[i].numpy(), r[0].as_array())
            assert bool(fell_back[i]) == r[0].fallback
        else:  # fallback "none": the training loop uses the whole map, flagged as a fallback
            assert fallback == "none" and bool(fell_back[i]) and boxes[i].tolist() == [0, 0, 48, 48]
    assert bool(fell_back[3]) and bool(fell_back[5])
