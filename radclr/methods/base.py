"""What every method shares; a method is a small class over shared parts and losses.

A run owns one ``nn.ModuleDict`` of *parts* that persist across its stages: the image encoder ``encoder`` (f_i)
always, and whatever the stages add -- ``image_proj`` (g_i), ``radiomics_encoder`` (f_r incl. its
standardiser), ``radiomics_proj`` (g_r), ``classifier``, ``simclr_head`` ... A stage's method creates the parts
it needs if an earlier stage did not, so weights flow from pretraining to fine-tuning by sharing the part.
Only the parts a method *trains* get gradients (the others are frozen for that stage); a stage's ``freeze`` list
freezes more: whole parts or named sub-modules (:mod:`radclr.methods.freeze`, e.g. ``encoder.layer4``).

Subclasses implement :meth:`training_step` (-> dict with ``loss`` and any logged scalars) and, if they have a
classifier, :meth:`logits`. What differs between methods is the views and the loss, never the training loop
(:mod:`radclr.engine.loop`), which calls the hooks declared here (no-op defaults) and never probes for others.
A method's options are a small dataclass (:attr:`Method.Options`, :mod:`radclr.methods.options`) read from its
config stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from radclr.cam.options import CamOptions
from radclr.errors import ConfigError
from radclr.methods.freeze import resolve_freeze
from radclr.methods.options import MethodOptions
from radclr.networks import build_image_encoder


@dataclass
class MethodContext:
    """What a method may know about the run when it is built."""

    findings: list[str]
    radiomics_names: list[str]
    model_cfg: dict
    image_size: int
    seed: int = 0
    world_size: int = 1
    rank: int = 0
    dataset_size: int = 0
    gather_negatives: bool = True
    extra: dict = field(default_factory=dict)
    in_channels: int = 1  # image channels: 1, or seed 004's n slices of a 3-D tumour stack (data.volume)
    task: str = "multilabel"  # data.task: multilabel (sigmoid per finding) | multiclass (softmax over classes)

    @property
    def n_findings(self) -> int:
        return len(self.findings)

    @property
    def n_radiomics(self) -> int:
        return len(self.radiomics_names)


class Method(nn.Module):
    """Base of all training methods (see module docstring)."""

    name: ClassVar[str] = "method"
    #: the method's options (a dataclass; subclasses name their own)
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    #: number of augmented image views per sample the method needs (SimCLR: 2)
    views: ClassVar[int] = 1
    #: needs the fixed-region radiomics vector in the batch
    needs_radiomics: ClassVar[bool] = False
    #: quantity to select ``best.pt`` on, and whether it is maximised
    monitor: ClassVar[tuple[str, str]] = ("val_loss", "min")
    #: trains on labels: its pool is the *labelled* part of the training split, and ``--label-fractions`` trains
    #: it once per fraction (:mod:`radclr.runs.fractions`); label-free methods see every training image
    uses_labels: ClassVar[bool] = False
    #: the scalars :meth:`validation_step` reports: ``metrics.csv`` columns ``val_<key>`` (the config check of
    #: ``best_checkpoint.metric`` names them)
    validation_keys: ClassVar[tuple[str, ...]] = ("loss",)
    #: DDP: some steps leave trained parameters without a gradient (e.g. a batch without a BYOP anchor)
    find_unused_parameters: ClassVar[bool] = False
    #: label tasks (``data.task``) the method can train: label-free methods and those whose classification loss
    #: knows both declare ``("multilabel", "multiclass")``
    label_tasks: ClassVar[tuple[str, ...]] = ("multilabel",)

    def __init__(self, parts: nn.ModuleDict, ctx: MethodContext, options: dict | MethodOptions | None = None):
        super().__init__()
        self.parts = parts
        self.ctx = ctx
        if ctx.task not in self.label_tasks:
            raise ConfigError(f"method {self.name!r} supports data.task {' | '.join(self.label_tasks)}, not "
                              f"{ctx.task!r}")
        self.options = self.Options.from_config(options, self.name)
        #: whole parts this stage does not train (sub-module entries of ``freeze``: :meth:`frozen_modules`)
        self.frozen: set[str] = {str(s) for s in self.options.freeze if "." not in str(s)}
        #: epochs (0-based) before this one are not candidates for ``best.pt`` (e.g. a warm-up phase)
        self.monitor_from_epoch = 0
        self.ensure_part("encoder", self._build_encoder)

    # --- parts --------------------------------------------------------------------------------------------
    def ensure_part(self, name: str, factory) -> nn.Module:
        if name not in self.parts:
            self.parts[name] = factory()
        return self.parts[name]

    def _build_encoder(self) -> nn.Module:
        m = self.ctx.model_cfg
        return build_image_encoder(m["encoder"], in_channels=int(self.ctx.in_channels), weights=m.get("weights"),
                                   **(m.get("encoder_options") or {}))

    @property
    def encoder(self) -> nn.Module:
        return self.parts["encoder"]

    #: parts this method trains (subclasses extend); frozen ones are excluded
    trained_parts: ClassVar[tuple[str, ...]] = ("encoder",)

    def frozen_modules(self) -> list[nn.Module]:
        """Sub-modules frozen by ``freeze`` entries that name less than a whole part (``encoder.layer4``,
        ``radiomics_encoder.linear[-2:]``), resolved against the current parts (:mod:`radclr.methods.freeze`)."""
        return [m for _, m in resolve_freeze(self.parts, self.options.freeze)[1]]

    def trainable_parameters(self):
        names = [n for n in self.trained_parts if n not in self.frozen and n in self.parts]
        held = {id(p) for m in self.frozen_modules() for p in m.parameters()}
        params = [p for n in names for p in self.parts[n].parameters() if id(p) not in held]
        own = [p for n, p in self.named_parameters() if not n.startswith("parts.")]
        return params + own

    def prepare_stage(self) -> None:
        """Freeze every parameter that this stage does not train (so DDP and optimisers see only those)."""
        train = {id(p) for p in self.trainable_parameters()}
        for p in self.parameters():
            p.requires_grad_(id(p) in train)
        self._hold_frozen()  # frozen parts and sub-modules also keep their BatchNorm statistics

    def _hold_frozen(self) -> None:
        for n in self.frozen:
            if n in self.parts:
                self.parts[n].eval()
        for m in self.frozen_modules():
            m.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self._hold_frozen()
        return self

    # --- hooks the training loop calls (in this order), with no-op defaults ---------------------------------
    def setup(self, data, train_indices: np.ndarray) -> None:
        """Once per stage before training, with the run's prepared data and the training split's indices (e.g.
        fit the radiomics standardiser). Not called again when a stage resumes: its results are checkpointed."""

    def set_training_pool(self, indices: np.ndarray) -> None:
        """The images this stage trains on (e.g. memory-bank negatives come only from them)."""

    def param_groups(self) -> list[dict]:
        """Optimiser parameter groups; a group may carry ``warmup_epochs`` (a linear warm-up of its own)."""
        return [{"params": self.trainable_parameters()}]

    def on_epoch_start(self, epoch: int) -> None:
        """At the start of every epoch (0-based), also a resumed one."""

    def calibrate(self, data, train_indices: np.ndarray) -> dict | None:
        """At the start of a (not resumed) epoch, with the current weights: fit whatever depends on them (BYOP's
        CAM threshold). Returns scalars to log in the epoch's metrics row, or None."""
        return None

    def forward(self, batch: dict) -> dict:
        # DDP calls forward; a training step is the forward of a method
        return self.training_step(batch)

    def training_step(self, batch: dict) -> dict:
        raise NotImplementedError

    def after_optimizer_step(self, batch: dict, outputs: dict) -> None:
        """After each optimiser step, with the step's batch and outputs (memory-bank updates, BYOP bookkeeping)."""

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict:
        """Default: the training loss on a validation batch (no augmentation), plus logits if any."""
        out = {k: v for k, v in self.training_step(batch).items() if torch.is_tensor(v) and v.dim() == 0}
        logits = self.batch_logits(batch)
        if logits is not None:
            out["logits"] = logits
        return out

    def batch_logits(self, batch: dict) -> torch.Tensor | None:
        """Finding logits for a batch (methods that need more than the image override this)."""
        return self.logits(batch["image"])

    def logits(self, images: torch.Tensor) -> torch.Tensor | None:
        """Finding logits ``[B, F]`` (None for methods without a classifier)."""
        if "classifier" not in self.parts:
            return None
        return self.parts["classifier"](self.head_input(images))

    @property
    def classifies(self) -> bool:
        """Whether this method produces finding logits (a classifier was trained)."""
        return "classifier" in self.parts

    @property
    def cam_options(self) -> CamOptions:
        """How this method's Grad-CAM maps become boxes (BYOP: its own options and calibrated threshold)."""
        return CamOptions()

    def cam_head(self):
        """Callable mapping the pooled representation y_i to finding logits (the path Grad-CAM differentiates),
        or None when the method cannot classify from the image alone."""
        if "classifier" not in self.parts:
            return None
        return self.parts["classifier"]

    def representation(self, images: torch.Tensor) -> torch.Tensor:
        """The image representation y_i = f_i(x) (pooled encoder output), used for linear evaluation."""
        return self.encoder(images)

    def head_input(self, images: torch.Tensor) -> torch.Tensor:
        return self.representation(images)

    def extra_state(self) -> dict:
        """Non-tensor state to checkpoint (tensors belong in buffers)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass


# --------------------------------------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    _REGISTRY[cls.name] = cls
    return cls


def method_class(name: str) -> type[Method]:
    """The method registered as ``name`` (the built-in ones register when :mod:`radclr.methods` is imported)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; available: {sorted(_REGISTRY)}") from None
