"""Grad-CAM and CAM -> boxes: the box-generation half of BYOP (seed 001 §3.2, Fig. 3).

* :mod:`radclr.cam.gradcam` -- batched Grad-CAM from the training forward's activations (no side effects on
  the training step) and a convenience for evaluation / prediction.
* :mod:`radclr.cam.options` -- :class:`CamOptions`, the one set of CAM -> box options training, evaluation and
  predict share.
* :mod:`radclr.cam.boxes` -- normalise / upsample maps, threshold + connected components -> scored boxes.
* :mod:`radclr.cam.calibrate` -- fit the CAM threshold on annotated (never test) images.

Box geometry -- scaling between pixel grids, IoU, box -> mask, box changes -- is :mod:`radclr.boxes`.
"""

from radclr.cam.boxes import ScoredBox, cam_to_boxes, count_fallbacks, normalize_cam, upsample_cam
from radclr.cam.calibrate import Calibration, calibrate_cam_threshold
from radclr.cam.gradcam import grad_cam, grad_cam_from_activations, select_targets, target_scores
from radclr.cam.options import CamOptions

__all__ = [
    "CamOptions",
    "Calibration",
    "ScoredBox",
    "calibrate_cam_threshold",
    "cam_to_boxes",
    "count_fallbacks",
    "grad_cam",
    "grad_cam_from_activations",
    "normalize_cam",
    "select_targets",
    "target_scores",
    "upsample_cam",
]
