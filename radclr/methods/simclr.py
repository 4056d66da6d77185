"""``simclr`` -- SimCLR self-supervised pretraining for CXR (seed 003 §III-B).

Two CXR-safe augmentations of each image (random resized crop, rotation, Gaussian blur, brightness/contrast;
flips off by default because they swap anatomy) -> encoder m(.) -> projection head n(.) (GAP -> 2048 ->
BN + ReLU -> 128, Table I) -> NT-Xent over the 2B projections, eq. (4), tau = 0.5, cosine similarity.
Pretrained on unlabelled images; evaluated by logistic regression on frozen features (``evaluation.linear_eval``)
or by fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass

from radclr.losses import NTXentLoss
from radclr.methods.base import Method, register
from radclr.methods.options import MethodOptions
from radclr.networks import simclr_projection_head
from radclr.runtime.distributed import gather_with_grad


@dataclass(frozen=True)
class SimCLROptions(MethodOptions):
    #: tau of NT-Xent, eq. (4) (seed 003 §IV: 0.5)
    temperature: float = 0.5


@register
class SimCLR(Method):
    name = "simclr"
    Options = SimCLROptions
    views = 2
    label_tasks = ("multilabel", "multiclass")  # label-free
    trained_parts = ("encoder", "simclr_head")

    def __init__(self, parts, ctx, options=None):
        super().__init__(parts, ctx, options)
        self.ensure_part("simclr_head", lambda: simclr_projection_head(self.encoder.out_dim))
        self.loss_fn = NTXentLoss(temperature=self.options.temperature)

    def training_step(self, batch):
        head = self.parts["simclr_head"]
        z1 = head(self.encoder(batch["image"]))
        z2 = head(self.encoder(batch["image2"]))
        if self.training and self.ctx.world_size > 1 and self.ctx.gather_negatives:  # not in validation:
            # every rank validates the same batches, gathered copies would be false negatives
            z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        return {"loss": self.loss_fn(z1, z2)}
