"""Eval-mode passes of a method over prepared data (no augmentation): logits and/or representations.

Used by evaluation, label-fraction linear evaluation, reports and benchmarks -- everything that needs a trained
method's outputs on a split -- without going through the training loop.
"""

from __future__ import annotations

import numpy as np
import torch

from radclr.methods import Method
from radclr.progress import progress_bar
from radclr.runtime.device import autocast_context, to_device
from radclr.training_data import PreparedData, TrainingView
from radclr.training_data.loader import StageLoader, resolve_num_workers

__all__ = ["run_inference"]


@torch.no_grad()
def run_inference(method: Method, data: PreparedData, indices: np.ndarray, device: torch.device, batch_size: int,
                  *, want_logits: bool = True, want_features: bool = False, progress: bool = False,
                  num_workers="auto", amp="auto") -> dict:
    """``{"logits": [N, F], "features": [N, D]}`` (numpy; each when asked for and available) of ``indices``.

    Batches come from a DataLoader (``num_workers``: a count or ``auto``, see
    :func:`radclr.training_data.loader.resolve_num_workers`) and run under the device's autocast (``amp``:
    :func:`radclr.runtime.device.autocast_context`; none on the CPU); outputs are read once at the end."""
    was_training = method.training
    method.eval()
    device = torch.device(device)
    view = TrainingView(data, data.dataset.labels, augment=None, views=1, seed=0, roi_crop=data.roi_crop)
    autocast, _ = autocast_context(device, amp)
    indices = np.asarray(indices)
    chunks = [indices[s:s + batch_size] for s in range(0, len(indices), batch_size)]
    loader = StageLoader({"eval": view}, num_workers=resolve_num_workers(num_workers, device), device=device)
    logits, feats = [], []
    try:
        for batch in progress_bar(loader.passes("eval", chunks, 0), total=len(chunks), enabled=progress,
                                  desc="inference", unit="batch"):
            batch = to_device(batch, device)
            with autocast:
                if want_logits:
                    lg = method.batch_logits(batch)
                    if lg is not None:
                        logits.append(lg.detach().float())
                if want_features:
                    feats.append(method.representation(batch["image"]).detach().float())
    finally:
        loader.close()
    method.train(was_training)
    out = {}
    if logits:
        out["logits"] = torch.cat(logits).cpu().numpy()
    if feats:
        out["features"] = torch.cat(feats).cpu().numpy()
    return out
