"""BYOP's per-step work made device-friendly (issue 19 item 7), equal to what it replaced on the CPU: the CAM
threshold calibration scores every threshold where the maps are (tensor boxes), and radiomics extraction waits for
the GPU only when profiling."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from test_byop_ddp import _batch, _method

from radclr.boxes import iou
from radclr.cam.boxes import cam_to_boxes
from radclr.cam.calibrate import DEFAULT_GRID, _grid_ious
from radclr.cam.options import CamOptions

extract_module = importlib.import_module("radclr.radiomics.extract")  # (the package exports the function)


def _old_grid_ious(cams, gt_boxes, options, grid):
    """The calibration's scoring before: scipy boxes on the CPU per threshold, numpy IoU."""
    ious = np.zeros((len(grid), len(cams)))
    for k, thr in enumerate(grid):
        boxes = cam_to_boxes(cams.cpu(), options.with_threshold(float(thr)))
        ious[k] = [float(np.max(iou(np.asarray([b[0].as_array()]), np.asarray(g, dtype=np.float64).reshape(-1, 4))))
                   if b else 0.0 for b, g in zip(boxes, gt_boxes)]
    return ious


@pytest.mark.parametrize("mode,select,fallback", [("relative", "largest", "whole"), ("relative", "max_mean", "none"),
                                                  ("percentile", "largest", "center"), ("absolute", "all", "none")])
def test_calibration_scores_equal_the_cpu_boxes(mode, select, fallback):
    g = torch.Generator().manual_seed(1)
    n, s = 12, 32
    cams = torch.nn.functional.interpolate(torch.rand(n, 1, 6, 6, generator=g), size=(s, s), mode="bilinear",
                                           align_corners=False)[:, 0]
    cams[3] = 0.0  # an uninformative map: the fallback
    cams[5] = torch.relu(cams[5] - 0.7)
    gts = [np.asarray([[int(torch.randint(0, 20, (), generator=g)), int(torch.randint(0, 20, (), generator=g)),
                        8 + i % 5, 6 + i % 7]] * (1 + i % 3), dtype=np.float64) + np.arange(1 + i % 3)[:, None]
           for i in range(n)]
    grid = DEFAULT_GRID if mode != "absolute" else tuple(round(0.05 * k, 2) for k in range(1, 20))
    options = CamOptions(mode=mode, select=select, fallback=fallback, threshold=0.5)
    new = _grid_ious(cams, gts, options, grid)
    old = _old_grid_ious(cams, gts, options, grid)
    np.testing.assert_array_equal(new, old)
    assert (old > 0).any() and (old < 1).any()


def test_radiomics_extraction_waits_for_the_gpu_only_when_profiling(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    extract_module._tick(None, "glcm", 0.0, torch.device("cuda", 0))
    assert calls == []
    timing = {}
    extract_module._tick(timing, "glcm", 0.0, torch.device("cuda", 0))
    assert len(calls) == 1 and timing["glcm"] > 0


def test_radiomics_in_a_background_thread_equal_the_inline_ones():
    """The GPU route (a CPU copy, radiomics in the background thread while the image side is queued) gives the
    inline computation's loss, gradients and caches; forced on here, on the CPU."""
    results = []
    for threaded in (False, True):
        method = _method(1, 0, {"loss": "focal", "negatives": "hierarchy", "cam_threshold": 0.6})
        method.radiomics_in_thread = threaded
        out = method.training_step(_batch())
        out["loss"].backward()
        grads = [p.grad.clone() for p in method.parameters() if p.grad is not None]
        results.append((out["loss"].detach(), grads, method.rad_cache.clone(), method.rad_valid.clone()))
        assert method.timings["regions"] > 0
    (la, ga, ca, va), (lb, gb, cb, vb) = results
    assert torch.equal(la, lb) and torch.equal(ca, cb) and torch.equal(va, vb) and bool(va.any())
    assert len(ga) == len(gb) and all(torch.equal(a, b) for a, b in zip(ga, gb))


@pytest.mark.parametrize("fallback", ["whole", "center", "none"])
@pytest.mark.parametrize("select", ["largest", "max_mean", "all"])
def test_cpu_route_of_top_boxes_equals_the_tensor_code(select, fallback):
    """BYOP and the calibration take boxes from scipy on the CPU, from the tensor code on a GPU: the same boxes."""
    from radclr.cam.boxes import cam_to_box_tensor, cam_top_boxes, upsample_cam

    g = torch.Generator().manual_seed(7)
    cams = torch.relu(torch.randn(24, 1, 7, 7, generator=g))
    cams = upsample_cam(torch.nn.functional.avg_pool2d(cams, 3, 1, 1)[:, 0], (56, 56))
    cams[0] = 0.0  # nothing on: the fallback
    cams[1, 10:20, 10:20] = 1.0  # two equal plateaus: the tie rules
    cams[1, 30:40, 30:40] = 1.0
    for mode, thr in (("relative", 0.5), ("relative", 0.85), ("percentile", 0.9), ("absolute", 0.3)):
        opts = CamOptions(threshold=thr, mode=mode, select=select, fallback=fallback)
        a, fa = cam_top_boxes(cams, opts)
        b, fb = cam_to_box_tensor(cams, opts)
        assert torch.equal(a, b) and torch.equal(fa, fb), (mode, thr)
        assert a.dtype == b.dtype == cams.dtype
