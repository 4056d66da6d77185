"""Samples of a run's prepared data as dicts of tensors, for any method (:class:`TrainingView`), and batching."""

from __future__ import annotations

import numpy as np
import torch

from radclr.boxes import union_box
from radclr.training_data.prepare import PreparedData
from radclr.training_data.sampling import sample_generator

__all__ = ["TrainingView", "collate"]


class TrainingView(torch.utils.data.Dataset):
    """Samples of a :class:`PreparedData` as dicts of tensors.

    Keys: ``index`` (dataset row), ``image`` ``[1,S,S]`` (``[n,S,S]`` tumour stacks for volumes: every slice gets
    the same augmentation) in [0,1] (augmented when training), ``image2`` (a second
    augmented view, when ``views=2``), ``label`` ``[F]`` (NaN = unknown/unlabelled), ``has_box`` (ground truth
    region available), ``box`` ``[4]`` (x, y, w, h of the union of GT boxes, store pixels; whole image if none),
    ``radiomics`` ``[R]`` (fixed-region features, raw) when available, ``no_finding`` (bool: a labelled image with no
    positive label among all of its dataset's findings, studied or not -- NIH "No Finding"; False for unlabelled
    images) when the dataset records it. Augmentation randomness is a function of
    ``(seed, epoch, index, view)`` (see :mod:`radclr.training_data.sampling`).
    """

    def __init__(self, data: PreparedData, labels: np.ndarray, *, augment=None, views: int = 1, seed: int = 0,
                 roi_crop=None):
        self.data = data
        self.labels = torch.as_tensor(labels, dtype=torch.float32)
        self.augment = augment
        self.views = views
        self.seed = seed
        self.epoch = 0
        self.roi_crop = roi_crop
        size = float(data.store.size)
        unions = [union_box(bx) for bx in data.boxes]
        boxes = [[u.x, u.y, u.w, u.h] if u is not None else [0.0, 0.0, size, size] for u in unions]
        self.box = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        self.has_box = torch.tensor([bool(b) for b in data.boxes])
        self.radiomics = None if data.radiomics is None else torch.as_tensor(data.radiomics, dtype=torch.float32)
        records = data.dataset.records
        self.no_finding = None if "no_finding" not in records else \
            torch.tensor(records["no_finding"].to_numpy(dtype=bool, copy=True)) & ~torch.isnan(self.labels).all(dim=1)

    def __len__(self) -> int:
        return len(self.data.store)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _view(self, img: torch.Tensor, index: int, view: int, epoch: int) -> torch.Tensor:
        if self.roi_crop is not None:
            img = self.roi_crop(img, self.box[index], generator=sample_generator(self.seed, epoch, index, 100 + view)
                                if self.augment is not None else None)
        if self.augment is None:
            return img
        return self.augment(img, generator=sample_generator(self.seed, epoch, index, view))

    def __getitem__(self, index: int) -> dict:
        return self.sample(index, self.epoch)

    def sample(self, index: int, epoch: int) -> dict:
        """Sample ``index`` as drawn at ``epoch`` (what ``view[index]`` gives after ``set_epoch(epoch)``; a
        DataLoader's persistent workers hold a copy of the view, so the epoch travels with the request)."""
        index, epoch = int(index), int(epoch)
        raw = torch.from_numpy(np.asarray(self.data.store.images[index], dtype=np.float32)) / 255.0
        if raw.dim() == 2:  # [S, S] image -> [1, S, S]; volume stacks already are [n, S, S]
            raw = raw.unsqueeze(0)
        out = {"index": torch.tensor(index), "label": self.labels[index], "has_box": self.has_box[index],
               "box": self.box[index], "image": self._view(raw, index, 0, epoch)}
        if self.views >= 2:
            out["image2"] = self._view(raw, index, 1, epoch)
        if self.radiomics is not None:
            out["radiomics"] = self.radiomics[index]
        if self.no_finding is not None:
            out["no_finding"] = self.no_finding[index]
        return out


def collate(samples: list[dict]) -> dict:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
