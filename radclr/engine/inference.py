"""Eval-mode passes of a method over prepared data (no augmentation): logits and/or representations.

Used by evaluation, label-fraction linear evaluation, reports and benchmarks -- everything that needs a trained
method's outputs on a split -- without going through the training loop.
"""

from __future__ import annotations

import numpy as np
import torch

from radclr.methods import Method
from radclr.progress import progress_bar
from radclr.runtime.device import to_device
from radclr.training_data import PreparedData, TrainingView, collate

__all__ = ["run_inference"]


@torch.no_grad()
def run_inference(method: Method, data: PreparedData, indices: np.ndarray, device: torch.device, batch_size: int,
                  *, want_logits: bool = True, want_features: bool = False, progress: bool = False) -> dict:
    """``{"logits": [N, F], "features": [N, D]}`` (numpy; each when asked for and available) of ``indices``."""
    was_training = method.training
    method.eval()
    view = TrainingView(data, data.dataset.labels, augment=None, views=1, seed=0, roi_crop=data.roi_crop)
    logits, feats = [], []
    for s in progress_bar(range(0, len(indices), batch_size), enabled=progress, desc="inference", unit="batch"):
        batch = to_device(collate([view[i] for i in indices[s:s + batch_size]]), device)
        if want_logits:
            lg = method.batch_logits(batch)
            if lg is not None:
                logits.append(lg.float().cpu().numpy())
        if want_features:
            feats.append(method.representation(batch["image"]).float().cpu().numpy())
    method.train(was_training)
    out = {}
    if logits:
        out["logits"] = np.concatenate(logits)
    if feats:
        out["features"] = np.concatenate(feats)
    return out
