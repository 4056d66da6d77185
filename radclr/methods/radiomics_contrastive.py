"""``radiomics_contrastive`` -- image<->radiomics contrastive pretraining (seed 000 §3, "Contrastive training").

View u: the X-ray through the image encoder f_i and an MLP to 128-d. View v: the 102 PyRadiomics features of
the region (ground-truth box; whole image for normals, or for every image in the "FairRadi" control,
``radiomics.region: whole_image``), standardised with training-split statistics, through an MLP to 128-d.
Loss: the bidirectional objective of eqs. (1)-(3), L = 1/N sum_i [lambda L(u->v)_i + (1 - lambda) L(v->u)_i],
tau = 0.1, similarity = negative p-norm distance (p = 2) or cosine.

After pretraining, a ``supervised`` stage fine-tunes encoder + MLP with BCE (eq. 4); at test time only the
image path runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from radclr.errors import ConfigError
from radclr.losses import BidirectionalContrastiveLoss
from radclr.methods.base import Method, register
from radclr.methods.options import MethodOptions
from radclr.networks import ProjectionHead, RadiomicsEncoder
from radclr.runtime.distributed import gather_with_grad


class RadiomicsViewMixin:
    """Builds f_r (standardiser + 3-layer MLP) and g_r, and fits the standardiser on the training split."""

    def _build_radiomics_parts(self):
        m = self.ctx.model_cfg
        if self.ctx.n_radiomics == 0:
            raise ConfigError(f"method {self.name!r} needs radiomics features, but the run has none")
        self.ensure_part("radiomics_encoder", lambda: RadiomicsEncoder(
            self.ctx.n_radiomics, hidden_dims=tuple(m["radiomics_hidden"]), out_dim=int(m["radiomics_dim"])))
        self.ensure_part("radiomics_proj", lambda: ProjectionHead(int(m["radiomics_dim"]), m["proj_hidden"], m["proj_dim"]))

    def _fit_standardizer(self, data, train_indices):
        std = self.parts["radiomics_encoder"].standardizer
        if not bool(std.fitted):
            std.fit(torch.as_tensor(np.asarray(data.radiomics)[train_indices], dtype=torch.float32))

    def radiomics_embedding(self, radiomics: torch.Tensor) -> torch.Tensor:
        return self.parts["radiomics_proj"](self.parts["radiomics_encoder"](radiomics))


@dataclass(frozen=True)
class RadiomicsContrastiveOptions(MethodOptions):
    #: tau of eqs. (1)-(2)
    temperature: float = 0.1
    #: weight of the image->radiomics direction, eq. (3)
    lam: float = field(default=0.5, metadata={"key": "lambda"})
    #: ``pnorm`` (negative p-norm distance, the paper's) or ``cosine``
    similarity: Literal["pnorm", "cosine"] = "pnorm"
    #: p of the p-norm distance
    p: float = 2.0


@register
class RadiomicsContrastive(RadiomicsViewMixin, Method):
    name = "radiomics_contrastive"
    Options = RadiomicsContrastiveOptions
    needs_radiomics = True
    label_tasks = ("multilabel", "multiclass")  # label-free
    trained_parts = ("encoder", "image_proj", "radiomics_encoder", "radiomics_proj")

    def __init__(self, parts, ctx, options=None):
        super().__init__(parts, ctx, options)
        m = ctx.model_cfg
        self.ensure_part("image_proj", lambda: ProjectionHead(self.encoder.out_dim, m["proj_hidden"], m["proj_dim"]))
        self._build_radiomics_parts()
        o = self.options
        self.loss_fn = BidirectionalContrastiveLoss(temperature=o.temperature, lambda_=o.lam, similarity=o.similarity,
                                                    p=o.p)

    def setup(self, data, train_indices):
        self._fit_standardizer(data, train_indices)

    def training_step(self, batch):
        u = self.parts["image_proj"](self.encoder(batch["image"]))
        v = self.radiomics_embedding(batch["radiomics"])
        if self.training and self.ctx.world_size > 1 and self.ctx.gather_negatives:  # not in validation:
            # every rank validates the same batches, gathered copies would be false negatives
            u, v = gather_with_grad(u), gather_with_grad(v)
        return {"loss": self.loss_fn(u, v)}
