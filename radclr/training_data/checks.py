"""What is said (or refused) once when training starts, about the prepared data.

:func:`check_training_data` is called by the training loop after the data are prepared and before the first
epoch. It **refuses** (:class:`~radclr.errors.DataError`) data nothing can be learned from when a stage learns
from labels:

* no labelled training image (e.g. a label fraction that leaves none, every label unknown);
* no finding (the label table names none);
* no finding with both a positive and a negative labelled training image (e.g. one finding that every image has:
  a classifier would only learn "always yes"); for a multi-class task, a single class.

It returns the **warnings** to log: :func:`~radclr.training_data.prepare.label_coverage_warnings` (a finding
without a positive image in a split), a finding without a *negative* labelled training image, and images that
``radclr data validate`` flags but that can be trained on -- constant images (no information: every pixel the
same) and very small ones (under 32 px a side, stretched to the input size) -- named with examples.
"""

from __future__ import annotations

import numpy as np

from radclr.data.validate import SMALL_IMAGE_SIDE
from radclr.errors import DataError
from radclr.training_data.prepare import PreparedData, label_coverage_warnings

__all__ = ["check_training_data", "unusable_images"]


def _names(ids, n: int = 5) -> str:
    ids = [str(i) for i in ids]
    return ", ".join(ids[:n]) + (f", ... ({len(ids) - n} more)" if len(ids) > n else "")


def unusable_images(data: PreparedData, chunk: int = 512) -> tuple[list[str], list[str]]:
    """``(constant, small)``: image ids whose stored image has one value only, and whose file is under
    ``SMALL_IMAGE_SIDE`` pixels a side."""
    ids = list(map(str, data.dataset.image_ids))
    hw = np.asarray(data.store.original_hw)
    small = [ids[i] for i in np.flatnonzero(hw.min(axis=1) < SMALL_IMAGE_SIDE)] if hw.size else []
    constant = []
    images = data.store.images
    for s in range(0, len(images), chunk):
        block = np.asarray(images[s:s + chunk]).reshape(min(chunk, len(images) - s), -1)
        flat = block.min(axis=1) == block.max(axis=1)
        constant += [ids[s + int(i)] for i in np.flatnonzero(flat)]
    return constant, small


def check_training_data(data: PreparedData, task: str, uses_labels: bool, scan_images: bool = True) -> list[str]:
    """Refuse data nothing can be learned from; return the warnings to log (module docstring). ``scan_images``:
    look for constant and tiny images (one pass over the image store; the main rank only under DDP)."""
    lines = []
    if uses_labels:
        train = data.indices("train", labeled_only=True)
        name = data.dataset.name
        if len(train) == 0:
            raise DataError(f"{name}: no labelled training image (of {len(data.indices('train'))} training images): "
                            f"nothing to learn from; check labels.csv and data.label_fraction")
        if not data.findings:
            raise DataError(f"{name}: the labels name no finding: nothing to learn")
        y = data.labels_for_training()[train]
        known = ~np.isnan(y).all(axis=1) if y.ndim == 2 and y.shape[1] else np.zeros(len(train), dtype=bool)
        if data.findings and not known.any():
            raise DataError(f"{name}: none of the {len(train)} labelled training image(s) has a known label "
                            f"(blank labels = unknown): nothing to learn from; check labels.csv")
        if task == "multiclass":
            present = [f for j, f in enumerate(data.findings) if (y[:, j] == 1).any()]
            if len(present) < 2:
                raise DataError(f"{name}: the labelled training images hold one class only ({present}): a "
                                f"classifier cannot learn to tell classes apart")
        else:
            counts = {f: (int((y[:, j] == 1).sum()), int((y[:, j] == 0).sum())) for j, f in enumerate(data.findings)}
            if not any(p and n for p, n in counts.values()):
                detail = "; ".join(f"{f}: {p} positive, {n} negative" for f, (p, n) in counts.items())
                raise DataError(f"{name}: no finding has both positive and negative labelled training images "
                                f"({detail}): a classifier cannot learn (add images without the finding, e.g. "
                                f"'No Finding')")
            for f, (p, n) in counts.items():
                if p and not n:
                    lines.append(f"finding {f!r} has no negative image in the training labels ({p} positive, 0 "
                                 f"negative) -- the model cannot learn it (only 'always yes')")
    lines += label_coverage_warnings(data)
    constant, small = unusable_images(data) if scan_images else ([], [])
    if constant:
        lines.append(f"{len(constant)} constant image(s) (every pixel the same: no information to learn from; "
                     f"`radclr data validate` lists them as errors): {_names(constant)}")
    if small:
        lines.append(f"{len(small)} very small image(s) (under {SMALL_IMAGE_SIDE} px a side, stretched to "
                     f"{data.store.size} px): {_names(small)}")
    return lines
