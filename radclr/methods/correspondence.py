"""``correspondence`` -- radiomics-deep feature correspondence with memory banks (seed 004 §2).

Deep view d: the ROI crop (resized to the mean ROI size, random crop + resize back; ``radiomics.region:
roi_crop``) -> ResNet GAP -> FC -> 128, L2-normalised. Radiomics view r: the ROI's features, standardised on
the training split, -> three FC layers -> 128, L2-normalised. Loss eq. (2): L(d,r) = L(d->r) + L(r->d), each an
InfoNCE (eq. 1) of the positive against K negatives drawn from the other view's memory bank (size = dataset,
momentum 0.5, tau = 0.07). Banks are updated only after training steps.

``hybrid`` is seed 004's fine-tuned "hybrid network": both branches + one FC on their concatenation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from radclr.losses import MemoryBankInfoNCELoss
from radclr.methods.base import Method, register
from radclr.methods.options import ClassificationOptions, MethodOptions
from radclr.methods.radiomics_contrastive import RadiomicsViewMixin
from radclr.methods.supervised import classification_loss
from radclr.networks import LinearClassifier, RadiomicsEncoder
from radclr.runtime.distributed import gather_no_grad


class ImageRadiomicsBranches(RadiomicsViewMixin):
    """Two branches to one 128-d space (seed 004 §2.3): image -> ResNet GAP -> FC -> 128, and radiomics ->
    three FC layers -> 128 (no separate projector)."""

    def _build_branches(self) -> int:
        m = self.ctx.model_cfg
        dim = int(m["proj_dim"])
        self.ensure_part("image_proj", lambda: torch.nn.Linear(self.encoder.out_dim, dim))
        # three FC layers straight to the 128-d embedding (no separate projector)
        self.ensure_part("radiomics_encoder", lambda: RadiomicsEncoder(
            self.ctx.n_radiomics, hidden_dims=tuple(m["radiomics_hidden"]), out_dim=dim))
        return dim

    def setup(self, data, train_indices):
        self._fit_standardizer(data, train_indices)


@dataclass(frozen=True)
class CorrespondenceOptions(MethodOptions):
    #: tau of the InfoNCE, eq. (1) (seed 004: 0.07)
    temperature: float = 0.07
    #: memory-bank momentum (seed 004: 0.5)
    momentum: float = 0.5
    #: K negatives drawn from the other view's bank per positive (at most the training pool less one)
    num_negatives: int = 4096


@register
class Correspondence(ImageRadiomicsBranches, Method):
    name = "correspondence"
    Options = CorrespondenceOptions
    needs_radiomics = True
    label_tasks = ("multilabel", "multiclass")  # label-free
    trained_parts = ("encoder", "image_proj", "radiomics_encoder")

    def __init__(self, parts, ctx, options=None):
        super().__init__(parts, ctx, options)
        dim = self._build_branches()
        o = self.options
        self.bank = MemoryBankInfoNCELoss(bank_size=max(ctx.dataset_size, 2), dim=dim,
                                          num_negatives=min(o.num_negatives, max(ctx.dataset_size - 1, 1)),
                                          temperature=o.temperature, momentum=o.momentum, seed=ctx.seed)

    def set_training_pool(self, indices) -> None:
        """Negatives come from the stage's training images only (engine hook, called before training)."""
        self.bank.set_pool(indices)

    def embeddings(self, batch):
        d = F.normalize(self.parts["image_proj"](self.encoder(batch["image"])), dim=1)
        r = F.normalize(self.parts["radiomics_encoder"](batch["radiomics"]), dim=1)
        return d, r

    def training_step(self, batch):
        d, r = self.embeddings(batch)
        loss = self.bank(d, r, batch["index"])
        return {"loss": loss, "_d": d.detach(), "_r": r.detach()}

    @torch.no_grad()
    def validation_step(self, batch):
        """Validation loss without disturbing training: the negative sampler's RNG state is restored after."""
        state = self.bank.get_rng_state()
        try:
            return {"loss": self.training_step(batch)["loss"]}
        finally:
            self.bank.set_rng_state(state)

    @torch.no_grad()
    def after_optimizer_step(self, batch, outputs):
        idx, d, r = batch["index"], outputs["_d"], outputs["_r"]
        if self.ctx.world_size > 1:  # every rank keeps identical banks
            idx, d, r = gather_no_grad(idx), gather_no_grad(d), gather_no_grad(r)
        self.bank.update(idx, d, r)


@register
class Hybrid(ImageRadiomicsBranches, Method):
    """Seed 004 Table 2 "Hybrid network": image branch + radiomics branch -> FC on the concatenation."""

    name = "hybrid"
    Options = ClassificationOptions
    needs_radiomics = True
    monitor = ("val_auc_mean", "max")
    uses_labels = True
    label_tasks = ("multilabel", "multiclass")
    trained_parts = ("encoder", "image_proj", "radiomics_encoder", "hybrid_classifier")

    def __init__(self, parts, ctx, options=None):
        super().__init__(parts, ctx, options)
        dim = self._build_branches()
        self.ensure_part("hybrid_classifier", lambda: LinearClassifier(2 * dim, ctx.n_findings))
        self.loss_fn = classification_loss(self.options, ctx.task)

    def hybrid_logits(self, images, radiomics):
        d = self.parts["image_proj"](self.encoder(images))
        r = self.parts["radiomics_encoder"](radiomics)
        return self.parts["hybrid_classifier"](torch.cat([d, r], dim=1))

    def training_step(self, batch):
        logits = self.hybrid_logits(batch["image"], batch["radiomics"])
        return {"loss": self.loss_fn(logits, batch["label"]), "logits": logits.detach()}

    def logits(self, images):
        return None  # needs the radiomics view too: see batch_logits

    def cam_head(self):
        return None

    @property
    def classifies(self) -> bool:
        return True

    def batch_logits(self, batch):
        return self.hybrid_logits(batch["image"], batch["radiomics"])
