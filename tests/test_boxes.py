"""Box geometry (radclr.boxes): IoU against hand values, scaling between pixel grids, the one box -> pixels rule
(masks and drawn outlines), union and clipping, box changes between BYOP refreshes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radclr.boxes import (Box, as_box_array, box_change_rate, box_changes, boxes_to_masks, clip_box, iou,
                          pairwise_iou, pixel_span, scale_boxes, union_box)
from radclr.cam.boxes import ScoredBox


def xywh(b):
    return (b.x, b.y, b.w, b.h)


# --- IoU ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 0, 2, 2), (0, 0, 2, 2), 1.0),
        ((0, 0, 2, 2), (1, 0, 2, 2), 2 / 6),  # half overlap
        ((0, 0, 4, 4), (1, 1, 2, 2), 4 / 16),  # contained
        ((0, 0, 2, 2), (2, 0, 2, 2), 0.0),  # touching edges
        ((0, 0, 2, 2), (5, 5, 1, 1), 0.0),  # disjoint
        ((0, 0, 2, 2), (0, 0, 2, 1), 0.5),
        ((1, 1, 0, 0), (1, 1, 0, 0), 0.0),  # both degenerate: union 0 -> 0, not NaN
        ((1, 1, 0, 3), (0, 0, 4, 4), 0.0),  # zero-area vs box
    ],
)
def test_iou_hand_values(a, b, expected):
    assert float(iou(a, b)) == pytest.approx(expected)
    assert float(iou(b, a)) == pytest.approx(expected)


def test_iou_broadcasts_and_pairwise():
    a = np.array([[0, 0, 2, 2], [1, 0, 2, 2]], dtype=float)
    b = np.array([[0, 0, 2, 2], [10, 10, 1, 1], [1, 0, 2, 2]], dtype=float)
    m = pairwise_iou(a, b)
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m, [[1, 0, 1 / 3], [1 / 3, 0, 1]])
    np.testing.assert_allclose(iou(a, b[[0, 2]]), [1, 1])
    assert pairwise_iou(np.zeros((0, 4)), b).shape == (0, 3)


def test_iou_bad_boxes_raise():
    with pytest.raises(ValueError, match="negative width or height"):
        iou((0, 0, -1, 2), (0, 0, 1, 1))
    with pytest.raises(ValueError, match="NaN"):
        iou((0, 0, np.nan, 2), (0, 0, 1, 1))
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        iou((0, 0, 1), (0, 0, 1, 1))


# --- scaling and masks -----------------------------------------------------------------------------------------
def test_scale_boxes_round_trip_and_types():
    sb = ScoredBox(10, 20, 30, 40, 0.9, 12)
    up = scale_boxes(sb, (224, 224), (1024, 896))
    assert (up.x, up.y, up.w, up.h) == pytest.approx((40, 1024 / 224 * 20, 120, 1024 / 224 * 40))
    assert up.score == 0.9 and up.area == 12
    back = scale_boxes(up, (1024, 896), (224, 224))
    assert xywh(back) == pytest.approx(xywh(sb))
    nested = scale_boxes([[sb], [Box(1, 2, 3, 4, "Mass")]], (10, 10), (20, 30))
    assert xywh(nested[0][0]) == (30, 40, 90, 80) and nested[1][0] == Box(3, 4, 9, 8, "Mass")
    arr = scale_boxes(np.array([[1.0, 2.0, 3.0, 4.0]]), (10, 10), (5, 20))
    np.testing.assert_allclose(arr, [[2.0, 1.0, 6.0, 2.0]])
    with pytest.raises(ValueError, match="positive"):
        scale_boxes(sb, (0, 10), (10, 10))
    with pytest.raises(TypeError, match="cannot scale a str"):
        scale_boxes("box", (10, 10), (10, 10))


# --- box change rate -------------------------------------------------------------------------------------------
def test_box_change_rate_between_refreshes():
    prev = [[ScoredBox(0, 0, 10, 10, 1.0)], [ScoredBox(0, 0, 10, 10, 1.0)], [], [], (5, 5, 2, 2)]
    new = [[ScoredBox(1, 0, 10, 10, 1.0)],  # IoU 90/110 = 0.818 -> unchanged at 0.5
           [ScoredBox(6, 0, 10, 10, 1.0)],  # IoU 40/160 = 0.25 -> changed
           [],  # no box both times -> unchanged
           [ScoredBox(0, 0, 2, 2, 1.0)],  # appeared -> changed
           (5, 5, 2, 2)]
    assert box_changes(prev, new, iou_thr=0.5).tolist() == [False, True, False, True, False]
    assert box_change_rate(prev, new, iou_thr=0.5) == pytest.approx(2 / 5)
    assert box_change_rate(prev, new, iou_thr=0.9) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="differ in length"):
        box_change_rate(prev, new[:2])




# --- the one box -> pixels rule ----------------------------------------------------------------------------------
def test_integer_boxes_cover_exactly_their_pixels_and_clip():
    m = boxes_to_masks([(2, 1, 3, 2)], (6, 8))[0].numpy()
    want = np.zeros((6, 8), bool)
    want[1:3, 2:5] = True
    np.testing.assert_array_equal(m, want)
    clipped = boxes_to_masks([(-2, -2, 4, 4)], (5, 5))[0]
    assert int(clipped.sum()) == 4 and bool(clipped[:2, :2].all())
    assert not bool(boxes_to_masks([(10, 10, 3, 3)], (5, 5)).any())  # wholly outside: empty (caller's policy)


@pytest.mark.parametrize("box, cols, rows", [
    ((2.3, 1.5, 3.1, 2.0), (2, 6), (1, 4)),  # any pixel the box touches: floor(x) .. ceil(x + w)
    ((2.5, 2.5, 0.2, 0.2), (2, 3), (2, 3)),  # a sub-pixel box still covers its pixel
    ((1.0, 1.0, 2.0, 0.5), (1, 3), (1, 2)),
])
def test_fractional_boxes_cover_every_touched_pixel(box, cols, rows):
    m = boxes_to_masks([box], (8, 8))[0].numpy()
    r, c = np.nonzero(m)
    assert (c.min(), c.max() + 1, r.min(), r.max() + 1) == (*cols, *rows)
    assert m.sum() == (cols[1] - cols[0]) * (rows[1] - rows[0])
    assert pixel_span(box, (8, 8)) == (*cols, *rows)  # what overlays draw is what radiomics see


def test_masks_from_tensors_arrays_and_box_objects_agree():
    boxes = [Box(1.2, 0.4, 3.3, 2.0), ScoredBox(0, 0, 2, 2, 0.5)]
    a = boxes_to_masks(boxes, (7, 9))
    b = boxes_to_masks(np.array([[1.2, 0.4, 3.3, 2.0], [0, 0, 2, 2]]), (7, 9))
    c = boxes_to_masks(torch.tensor([[1.2, 0.4, 3.3, 2.0], [0, 0, 2, 2]], dtype=torch.float32), (7, 9))
    assert torch.equal(a, b) and torch.equal(a, c) and a.dtype == torch.bool and a.shape == (2, 7, 9)
    with pytest.raises(ValueError, match="non-negative"):
        boxes_to_masks(torch.tensor([[0.0, 0.0, -1.0, 2.0]]), (5, 5))
    with pytest.raises(ValueError, match="shape"):
        boxes_to_masks([(0, 0, 1, 1)], (5, 5, 5))


def test_union_clip_and_array_forms():
    u = union_box([Box(1, 2, 3, 4), (5, 0, 1, 1)])
    assert xywh(u) == (1, 0, 5, 6)
    assert union_box([]) is None
    assert clip_box(-2, 3, 10, 10, 8, 6) == (0.0, 3, 6.0, 5.0)
    assert clip_box(20, 20, 2, 2, 8, 6) is None
    np.testing.assert_array_equal(as_box_array([Box(1, 2, 3, 4)]), [[1, 2, 3, 4]])
    assert as_box_array(None).shape == (0, 4)


def test_iou_of_tensors_stays_a_tensor_and_equals_numpy():
    a = np.array([[0, 0, 4, 4], [1, 1, 2, 2], [5, 5, 0, 0]], dtype=float)
    b = np.array([[2, 2, 4, 4], [1, 1, 2, 2], [5, 5, 0, 0]], dtype=float)
    t = iou(torch.from_numpy(a).float(), torch.from_numpy(b).float())
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), iou(a, b))
    np.testing.assert_allclose(iou(a, b), [4 / 28, 1.0, 0.0])
