"""Supervised training of encoder + linear classifier: the baseline, fine-tuning and linear probing.

* Baseline "ResNet-18" rows of seed 000 Table 1 / seed 004 Table 2 "ResNet-50 (scratch)": a fresh encoder.
* Fine-tuning (seed 000 §3 "Supervised fine-tuning", eq. 4: binary cross-entropy; seed 004 §3.4): ``init`` from
  an earlier stage's parts (shared automatically), everything trained.
* Linear probing with a frozen encoder + FC (seed 004 §3.3): ``freeze: [encoder]``.
* ``head_input: projection`` puts the classifier on the 128-d projection u (seed 000 §3 "Testing": "the
  predicted output is calculated based on u"), training the projection MLP together with the CNN.

Unknown labels (NaN, e.g. the unlabelled part of a label fraction) contribute nothing to the loss.

Label tasks (``data.task``): ``multilabel`` (default) -- one logit per finding, sigmoid + binary cross-entropy
(seed 000 eq. 4); ``multiclass`` -- one logit per class, softmax cross-entropy over the classes of single-label
images (seed 004's 4-class kidney task, scored by accuracy and weighted F1 of the arg-max). There ``loss: bce``
(the default) means the task's cross-entropy; ``focal`` is defined for multi-label only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from radclr.errors import ConfigError
from radclr.losses import FocalLoss
from radclr.methods.base import Method, register
from radclr.methods.options import ClassificationOptions
from radclr.networks import LinearClassifier, ProjectionHead


def masked_bce_with_logits(logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean BCE over the known (non-NaN) entries; a graph-connected 0 when none is known."""
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    known = ~torch.isnan(target)
    if not known.any():
        return logits.sum() * 0.0
    pw = None if pos_weight is None else pos_weight.expand_as(logits)[known]
    return F.binary_cross_entropy_with_logits(logits[known], target[known], pos_weight=pw)


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of single-label images from one-hot ``target [B, K]`` rows (1 / 0 / NaN): a row
    without a 1 (unlabelled) contributes nothing; a graph-connected 0 when no row is labelled."""
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    known = (target == 1).any(dim=1)
    if not known.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[known], (target[known] == 1).float().argmax(dim=1))


def classification_loss(options: ClassificationOptions, task: str = "multilabel"):
    """The classification loss of ``options`` for a label task: multi-label ``bce`` or ``focal`` (seed 001 §3.3)
    with its alpha and gamma; multi-class softmax cross-entropy (``loss: bce``, the default, names it there)."""
    if task == "multiclass":
        if options.loss != "bce":
            raise ConfigError(f"loss {options.loss!r} is defined for multi-label tasks; data.task multiclass trains "
                              "with softmax cross-entropy (loss: bce, the default)")
        return masked_cross_entropy
    if options.loss == "bce":
        return lambda logits, y: masked_bce_with_logits(logits, y)
    if options.loss == "focal":
        return FocalLoss(alpha=options.alpha, gamma=options.gamma)
    raise ConfigError(f"unknown classification loss {options.loss!r} (bce | focal)")


@dataclass(frozen=True)
class SupervisedOptions(ClassificationOptions):
    #: what the classifier reads: the representation y_i, or the 128-d projection u (seed 000 §3 "Testing")
    head_input: Literal["representation", "projection"] = "representation"


@register
class Supervised(Method):
    name = "supervised"
    Options = SupervisedOptions
    monitor = ("val_auc_mean", "max")
    uses_labels: ClassVar[bool] = True
    label_tasks = ("multilabel", "multiclass")
    trained_parts = ("encoder", "image_proj", "classifier")

    def __init__(self, parts, ctx, options=None):
        super().__init__(parts, ctx, options)
        self.head = self.options.head_input
        m = ctx.model_cfg
        if self.head == "projection":
            self.ensure_part("image_proj", lambda: ProjectionHead(self.encoder.out_dim, m["proj_hidden"], m["proj_dim"]))
            in_dim = int(m["proj_dim"])
        else:
            in_dim = self.encoder.out_dim
        self.ensure_part("classifier", lambda: LinearClassifier(in_dim, ctx.n_findings))
        # a projection head carried over from pretraining but not on the path to the logits stays untouched
        # (DDP refuses parameters that get no gradient)
        self.trained_parts = ("encoder", "classifier") + (("image_proj",) if self.head == "projection" else ())
        self.loss_fn = classification_loss(self.options, ctx.task)

    def cam_head(self):
        clf = self.parts["classifier"]
        if self.head == "projection":
            proj = self.parts["image_proj"]
            return lambda rep: clf(proj(rep))
        return clf

    def head_input(self, images):
        y = self.encoder(images)
        return self.parts["image_proj"](y) if self.head == "projection" else y

    def training_step(self, batch):
        logits = self.parts["classifier"](self.head_input(batch["image"]))
        return {"loss": self.loss_fn(logits, batch["label"]), "logits": logits.detach()}
