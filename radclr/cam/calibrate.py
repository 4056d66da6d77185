"""Fit the CAM -> box threshold on annotated images that are not test images.

Seed 001 §3.2 thresholds Grad-CAM maps with "an ad-hoc threshold". How large the thresholded component is
depends on the network's receptive field and the map's resolution, so a fixed 0.5 tends to give boxes much
larger than the lesions (seen on phantoms: mean IoU 0.17 at 0.5, 0.38 at 0.8). radclr can instead choose the
threshold that maximises the mean IoU with the ground-truth boxes of annotated *training/validation* images
(``cam_threshold: auto``) -- never on test images. The maps are thresholded, boxed and scored where they were
computed (on a GPU: no copy of the maps per threshold). ``per_finding=True`` also fits one threshold per finding that
has at least ``min_cases`` annotated cases (``auto_per_finding``): the same relative cut cannot fit an 8-px nodule
and an effusion filling a lung base; findings with fewer cases keep the pooled threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from radclr.boxes import iou
from radclr.cam.boxes import cam_top_boxes
from radclr.cam.gradcam import grad_cam
from radclr.cam.options import CamOptions

#: relative thresholds tried: 0.1 .. 0.95 in steps of 0.05 (a ReLU Grad-CAM's hot spot can need a cut close to
#: its maximum -- 0.9, the top of an earlier 0.3..0.9 grid, was chosen on phantoms -- or far below it)
DEFAULT_GRID = tuple(round(0.05 * k, 2) for k in range(2, 20))


@dataclass
class Calibration:
    threshold: float
    mean_iou: float
    n_cases: int
    table: dict = field(default_factory=dict)  # threshold -> mean IoU
    #: per finding (``per_finding=True``): {finding: {"threshold", "mean_iou", "n_cases"}} for findings with a fit
    per_finding: dict = field(default_factory=dict)

    def apply(self, options: CamOptions) -> CamOptions:
        """``options`` with the fitted threshold(s)."""
        return options.with_threshold(self.threshold, tuple((f, v["threshold"]) for f, v in self.per_finding.items()))

    def to_dict(self) -> dict:
        out = {"threshold": self.threshold, "mean_iou": self.mean_iou, "n_cases": self.n_cases,
               "grid": {f"{k:g}": v for k, v in self.table.items()}}
        if self.per_finding:
            out["per_finding"] = self.per_finding
        return out


def calibrate_cam_threshold(encoder, head, images: torch.Tensor, targets: torch.Tensor,
                            gt_boxes: Sequence[np.ndarray], options: CamOptions | None = None, *,
                            grid: Sequence[float] = DEFAULT_GRID, batch_size: int = 64, per_finding: bool = False,
                            findings: Sequence[str] | None = None, min_cases: int = 5) -> Calibration:
    """Threshold from ``grid`` maximising the mean IoU (top-1 box vs the best-matching GT box of the target);
    the other CAM options (mode, selection, fallback) are those of ``options``.

    images ``[N, 1, S, S]`` (model input), targets ``[N]`` finding indices, ``gt_boxes[i]`` ``[k, 4]`` x, y, w, h
    in the same ``S x S`` pixels. Ties go to the higher threshold (tighter boxes). ``per_finding`` (with the
    ``findings`` names of the target indices): also a threshold per finding with ``>= min_cases`` cases.
    """
    options = options or CamOptions()
    if len(images) != len(targets) or len(images) != len(gt_boxes):
        raise ValueError(f"images ({len(images)}), targets ({len(targets)}) and gt_boxes ({len(gt_boxes)}) must align")
    if len(images) == 0:
        raise ValueError("no annotated images to calibrate the CAM threshold on")
    size = tuple(images.shape[-2:])
    cams = torch.cat([grad_cam(encoder, head, images[s:s + batch_size], targets[s:s + batch_size], upsample_to=size,
                               layer=options.layer)
                      for s in range(0, len(images), batch_size)])
    ious = _grid_ious(cams, gt_boxes, options, grid)
    table = {float(t): float(ious[k].mean()) for k, t in enumerate(grid)}
    best = _best(table)
    per = {}
    if per_finding:
        if findings is None:
            raise ValueError("per_finding calibration needs the findings' names")
        t_idx = targets.cpu().numpy()
        for j in np.unique(t_idx):
            sel = t_idx == j
            if sel.sum() >= min_cases:
                sub = {float(t): float(ious[k, sel].mean()) for k, t in enumerate(grid)}
                b = _best(sub)
                per[str(findings[int(j)])] = {"threshold": b, "mean_iou": sub[b], "n_cases": int(sel.sum())}
    return Calibration(best, table[best], len(images), table, per)


def _grid_ious(cams: torch.Tensor, gt_boxes: Sequence[np.ndarray], options: CamOptions,
               grid: Sequence[float]) -> np.ndarray:
    """``[len(grid), N]``: per threshold, each map's top-1 box IoU with its best-matching GT box (0 for no box,
    i.e. fallback ``none``), computed where the maps are (:func:`~radclr.cam.boxes.cam_top_boxes`: the first box
    :func:`~radclr.cam.boxes.cam_to_boxes` returns, by the tensor code on a GPU) and copied to the host once."""
    dev = cams.device
    k = max(len(np.asarray(g).reshape(-1, 4)) for g in gt_boxes)
    gt = torch.zeros(len(gt_boxes), k, 4, dtype=torch.float64)
    known = torch.zeros(len(gt_boxes), k, dtype=torch.bool)
    for i, g in enumerate(gt_boxes):
        g = torch.as_tensor(np.asarray(g, dtype=np.float64).reshape(-1, 4))
        gt[i, :len(g)], known[i, :len(g)] = g, True
    gt, known = gt.to(dev), known.to(dev)
    out = torch.zeros(len(grid), len(gt_boxes), dtype=torch.float64, device=dev)
    for j, thr in enumerate(grid):
        boxes, fell_back = cam_top_boxes(cams, options.with_threshold(float(thr)))
        best = iou(boxes[:, None, :], gt).masked_fill(~known, -1.0).amax(dim=1)
        if options.fallback == "none":  # no box scores 0
            best = best.masked_fill(fell_back, 0.0)
        out[j] = best
    return out.cpu().numpy()


def _best(table: dict) -> float:
    return max(table, key=lambda t: (round(table[t], 12), t))
