"""Grad-CAM and CAM -> boxes: the box-generation half of BYOP (seed 001 §3.2, Fig. 3).

* :mod:`radclr.cam.gradcam` -- batched Grad-CAM from the training forward's activations (no side effects on
  the training step) and a convenience for evaluation / prediction.
* :mod:`radclr.cam.boxes` -- normalise / upsample maps, threshold + connected components -> scored boxes,
  rescale boxes between pixel grids, box-change rate between refreshes.
"""

from radclr.cam.boxes import (
    ScoredBox,
    box_change_rate,
    box_changes,
    boxes_to_mask,
    cam_to_boxes,
    count_fallbacks,
    normalize_cam,
    scale_boxes,
    upsample_cam,
)
from radclr.cam.gradcam import grad_cam, grad_cam_from_activations, select_targets, target_scores

__all__ = [
    "ScoredBox",
    "box_change_rate",
    "box_changes",
    "boxes_to_mask",
    "cam_to_boxes",
    "count_fallbacks",
    "grad_cam",
    "grad_cam_from_activations",
    "normalize_cam",
    "scale_boxes",
    "select_targets",
    "target_scores",
    "upsample_cam",
]
