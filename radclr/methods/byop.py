"""``byop`` -- knowledge-augmented contrastive learning with the BYOP feedback loop (seed 001 §3).

One end-to-end, semi-supervised step (Fig. 2 and 3 of seed 001):

1. ``fmap = f_i.forward_features(x)``, ``y_i = pool(fmap)``, ``logits = classifier(y_i)``, ``z_i = g_i(y_i)``.
2. Focal loss (§3.3) on the known labels (NaN = unlabelled/unknown contributes nothing).
3. BYOP (§3.2, "Bounding Boxes Generation"): for every disease-positive image (the anchors of §3.3) a region --
   the ground-truth box when the image is annotated, otherwise a box from Grad-CAM of the CAM layer (``cam_layer``)
   for the image's highest-scoring positive finding, thresholded into connected components
   (:func:`radclr.cam.boxes.cam_to_boxes` with the method's :class:`~radclr.cam.CamOptions`). The loop's CAM is
   the eval-mode map (:meth:`BYOP._loop_cams`): a no-grad forward of the rows that need a box with BatchNorm on
   its running statistics, so an image's box does not depend on the other images of its batch (train-mode
   BatchNorm would couple them) and is cut from the kind of map the CAM thresholds are calibrated on.
4. Radiomics of those regions (:class:`radclr.radiomics.regions.RegionRadiomics`, on the images' device) (first-order, shape, GLCM, GLRLM, GLSZM, GLDM,
   NGTDM), standardised with training statistics, through f_r and g_r: the positive z_r.
5. Cross-modal NT-Xent (§3.3): anchor z_i(v), positive z_r(v'), negatives z_i of "hard similar" images --
   normal, or the same body part with a different disease -- from the disease hierarchy
   (``negatives: hierarchy``; ``in_batch`` for plain negatives). Under DDP (``trainer.gather_negatives``) the
   anchors and negatives are those of every rank's batch, gathered with their gradients: the loss and its
   gradient are those of one process training on the whole batch.
6. L = lambda * L_cl + (1 - lambda) * L_fl.

Boxes and radiomics are cached per image and refreshed every ``refresh_every`` steps (1 = every step, as the
paper's loop); the fraction of refreshed boxes that moved (IoU < 0.5 with the previous box) is logged as
``box_change``. The cache lives in buffers, so it is checkpointed and a resumed run continues exactly. With
geometric augmentation on, cached boxes would be in the wrong frame, so the cache is then bypassed (every step
recomputes); the seed 001 configs keep augmentation off, as the paper argues CXRs are not amenable to it.

Warm-up (§4 "Implementation Details": "linear warmup for the first 10 epochs only for the disease
classification task"): implemented as a linear learning-rate warm-up of the classifier's parameter group
(``classifier_warmup_epochs``); ``contrastive_start_epoch`` optionally delays the contrastive term until the
CAMs have had time to form. Ablations (Table 3): ``loss: bce|focal`` x ``byop: true|false`` -- without BYOP the
positive is the radiomics of the fixed region (ground-truth box, else the whole image).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from radclr.boxes import boxes_to_masks, iou, pairwise_iou, union_box
from radclr.cam.boxes import cam_to_boxes, cam_top_boxes
from radclr.cam.calibrate import calibrate_cam_threshold
from radclr.cam.gradcam import grad_cam, select_targets
from radclr.cam.options import CamOptions
from radclr.data.hierarchy import DiseaseHierarchy, hard_negative_mask
from radclr.errors import ConfigError
from radclr.evaluation.ridge_r2 import cross_validated_r2
from radclr.losses import CrossModalNTXentLoss
from radclr.methods.base import Method, register
from radclr.methods.options import ClassificationOptions
from radclr.methods.radiomics_contrastive import RadiomicsViewMixin
from radclr.methods.supervised import classification_loss
from radclr.networks import LinearClassifier, ProjectionHead
from radclr.radiomics import kernels
from radclr.radiomics.regions import RegionRadiomics
from radclr.runtime.distributed import gather_no_grad, gather_with_grad


@dataclass(frozen=True)
class BYOPOptions(ClassificationOptions):
    """Options of the BYOP method (seed 001 §3); the classification loss defaults to focal (§3.3)."""

    loss: Literal["bce", "focal"] = "focal"
    #: L = lambda L_cl + (1 - lambda) L_fl (§3.3; the paper gives no value)
    lam: float = field(default=0.5, metadata={"key": "lambda"})
    #: tau of the cross-modal NT-Xent
    temperature: float = 0.1
    #: the BYOP loop (Grad-CAM boxes for unannotated images); false = the fixed region's radiomics (Table 3 ablation)
    byop: bool = True
    #: negatives: ``hierarchy`` ("hard similar": normal, or same body part with another disease) or ``in_batch``
    negatives: Literal["hierarchy", "in_batch"] = "hierarchy"
    #: which images are "normal" hard negatives (§3.1 "normal chest X-rays"): ``no_finding`` = no positive label
    #: among all of the dataset's findings (NIH "No Finding"), or ``no_studied_finding`` = every finding the run
    #: studies is 0 (counts e.g. an NIH image with only Emphysema as normal when Emphysema is not studied)
    negatives_normal: Literal["no_finding", "no_studied_finding"] = "no_finding"
    #: the positive's own term in the NT-Xent denominator
    include_positive: bool = True
    #: recompute CAM boxes + radiomics every N steps (None: ``radiomics.refresh_every``)
    refresh_every: int | None = None
    #: CAM -> box threshold: a number, ``auto`` (fit on annotated training images at every epoch) or
    #: ``auto_per_finding`` (also one threshold per finding with >= 5 annotated training cases)
    cam_threshold: float | Literal["auto", "auto_per_finding"] = CamOptions.threshold
    cam_mode: Literal["relative", "absolute", "percentile"] = CamOptions.mode
    cam_select: Literal["largest", "max_mean", "all"] = CamOptions.select
    cam_fallback: Literal["whole", "center", "none"] = CamOptions.fallback
    #: the Grad-CAM layer of the loop's boxes: ``last`` (the paper's layer4) or ``layer3`` (twice the resolution)
    cam_layer: Literal["last", "layer3"] = CamOptions.layer
    #: linear learning-rate warm-up of the classifier over this many epochs (§4 "Implementation Details")
    classifier_warmup_epochs: float = 0.0
    #: epochs of classification alone before the contrastive term (and the loop) start
    contrastive_start_epoch: int = 0
    #: ramp the contrastive term's weight linearly over this many loop epochs: loop epoch k (0 = the first)
    #: trains with lambda * min(1, (k + 1) / lambda_warmup_epochs) L_cl + (1 - lambda) L_cls (the classification
    #: weight does not move); 0 = the full lambda from the loop's first step. When the loop starts, the contrastive
    #: gradient into the encoder is tens of times the classification gradient (diagnostics), a shock a short
    #: training budget may not recover from
    lambda_warmup_epochs: int = 0
    #: bound the contrastive term's gradient into the last feature map (the Grad-CAM map) at this multiple of the
    #: classification term's, per step: the contrastive weight is scaled by min(1, bound * |dL_cls/dF| /
    #: |dL_cl/dF|) (detached). The loop's CAMs come from the classification gradient; when the contrast
    #: outweighs it tens of times (diagnostics) it moves the maps off the lesions, and nothing brings a finding
    #: back (issue 21's collapse). None = unbounded (the paper)
    contrastive_grad_bound: float | None = None
    #: the image view paired with a region's radiomics: ``global`` -- y_i, the encoder's pooled map (the paper's
    #: Fig. 2); ``region`` -- the map pooled over that region (the box whose radiomics are the positive; the whole
    #: image for images without one), so image and radiomics describe the same pixels; ``cam`` -- the map pooled
    #: with the class activation map of the image's target finding as weights (§3.1: "the image features focus
    #: on local regions highlighted by the attention map rather than the whole image"), differentiable, so the
    #: contrast also moves the attention onto the pixels whose radiomics it must match
    embedding_pool: Literal["global", "region", "cam"] = "global"
    #: with ``region``/``cam`` pooling: the same image's background (the map pooled outside the region, or with
    #: the inverted attention) is a negative for the region's radiomics (:class:`CrossModalNTXentLoss`), so matching
    #: them cannot be done by the whole image alone
    background_negative: bool = False
    #: log, per step, the gradient norm each loss term sends into the last feature map, and per epoch the CAM-box
    #: IoU on annotated training images and how much of the image embedding the radiomics explain (R^2)
    diagnostics: bool = False

    def __post_init__(self):  # checked with the config (check_types builds the options), before any run directory
        if not 0.0 <= self.lam <= 1.0:
            raise ConfigError(f"byop: lambda must be in [0, 1], got {self.lam}")
        if self.lambda_warmup_epochs < 0:
            raise ConfigError(f"byop: lambda_warmup_epochs must be >= 0, got {self.lambda_warmup_epochs}")
        if self.background_negative and self.embedding_pool == "global":
            raise ConfigError("byop: background_negative needs embedding_pool: region or cam (a global view has no "
                              "background)")
        if self.contrastive_grad_bound is not None and not self.contrastive_grad_bound > 0:
            raise ConfigError(f"byop: contrastive_grad_bound must be > 0 (or null: unbounded), got "
                              f"{self.contrastive_grad_bound}")


@register
class BYOP(RadiomicsViewMixin, Method):
    name = "byop"
    Options = BYOPOptions
    needs_radiomics = True  # the fixed-region radiomics fit the standardiser and serve the no-BYOP ablation
    # a label-free row is never an anchor (§3.3: L_cl runs over the disease-positive images), never a hard
    # negative (the hierarchy mask needs its labels) and gets no L_fl: in the batches it would only multiply the
    # optimiser steps (10x at 10 % labels, each with a tenth of the labelled rows). The pool is therefore the
    # labelled training images, as supervised's, and label fractions train BYOP per fraction (runs/fractions.py)
    uses_labels = True
    monitor = ("val_auc_mean", "max")
    validation_keys = ("loss_cls",)
    find_unused_parameters = True  # a batch without disease-positive images leaves f_r/g_r without gradient
    trained_parts = ("encoder", "classifier", "image_proj", "radiomics_encoder", "radiomics_proj")

    def __init__(self, parts, ctx, options=None):
        super().__init__(parts, ctx, options)
        o, m = self.options, ctx.model_cfg
        self.ensure_part("classifier", lambda: LinearClassifier(self.encoder.out_dim, ctx.n_findings))
        self.ensure_part("image_proj", lambda: ProjectionHead(self.encoder.out_dim, m["proj_hidden"], m["proj_dim"]))
        self._build_radiomics_parts()
        self.lam = o.lam  # the options' own checks (__post_init__) ran with the config
        self.cls_loss = classification_loss(o)
        self.contrast = CrossModalNTXentLoss(temperature=o.temperature, include_positive=o.include_positive)
        self.use_byop = o.byop
        self.hierarchy = DiseaseHierarchy.load() if o.negatives == "hierarchy" else None
        if self.hierarchy is not None:  # fail early on findings the hierarchy cannot place
            hard_negative_mask(np.zeros((1, ctx.n_findings)), ctx.findings, self.hierarchy)
        rad_cfg = ctx.extra.get("radiomics_cfg") or {}
        self.refresh_every = max(o.refresh_every if o.refresh_every is not None else int(rad_cfg.get("refresh_every", 1)), 1)
        self.auto_threshold = o.cam_threshold in ("auto", "auto_per_finding")
        self.per_finding_threshold = o.cam_threshold == "auto_per_finding"
        self._cam_base = CamOptions(threshold=CamOptions.threshold if self.auto_threshold else o.cam_threshold,
                                    mode=o.cam_mode, select=o.cam_select, fallback=o.cam_fallback, layer=o.cam_layer)
        self.classifier_warmup = o.classifier_warmup_epochs
        self.contrastive_start = o.contrastive_start_epoch
        # best.pt must be a model of the loop, not of the classification-only warm-up before it
        self.monitor_from_epoch = self.contrastive_start if self.lam > 0 else 0
        self.epoch = 0
        self.cache_regions = not bool(ctx.extra.get("augment_geometric", False))
        self.regions = RegionRadiomics(rad_cfg)
        #: compute the boxes' radiomics on the CPU in a background thread: None = when the images are on a GPU
        #: (and the compiled kernels are available)
        self.radiomics_in_thread: bool | None = None
        if self.use_byop and ctx.radiomics_names and list(ctx.radiomics_names) != self.regions.names:
            raise ConfigError("byop: the radiomics of Grad-CAM boxes would not have the run's feature names")
        n, r = max(ctx.dataset_size, 1), ctx.n_radiomics
        self.timings = {"cam": 0.0, "boxing": 0.0, "radiomics": 0.0, "regions": 0}  # seconds, for benchmarks
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("cam_threshold_value", torch.tensor(self._cam_base.threshold))
        if self.per_finding_threshold:  # NaN: no fit for that finding (the pooled threshold applies)
            self.register_buffer("cam_finding_thresholds", torch.full((ctx.n_findings,), float("nan")))
        self.register_buffer("box_cache", torch.zeros(n, 4))
        self.register_buffer("box_step", torch.full((n,), -1, dtype=torch.long))
        self.register_buffer("rad_cache", torch.zeros(n, r, dtype=torch.float64))
        self.register_buffer("rad_valid", torch.zeros(n, dtype=torch.bool))

    # --- training-loop hooks ------------------------------------------------------------------------------
    def setup(self, data, train_indices):
        # the loop feeds radiomics of *boxes* (ground truth or Grad-CAM): scale them with statistics of boxes
        # when the training split has enough annotated images; whole-image rows (every unannotated image) have
        # near-constant shape features and would put Grad-CAM box values far outside the fitted range
        train_indices = np.asarray(train_indices)
        boxed = train_indices[[bool(data.boxes[i]) for i in train_indices]] if len(train_indices) else train_indices
        self._fit_standardizer(data, boxed if len(boxed) >= 20 else train_indices)

    @property
    def cam_options(self) -> CamOptions:
        """CAM -> box options; the threshold is a buffer (calibrated per epoch, checkpointed, used by predict)."""
        per = ()
        if self.per_finding_threshold:
            per = tuple((f, float(t)) for f, t in zip(self.ctx.findings, self.cam_finding_thresholds.tolist())
                        if t == t)
        return self._cam_base.with_threshold(float(self.cam_threshold_value), per)

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def contrastive_weight(self) -> float:
        """The contrastive term's weight this epoch: 0 before the loop starts, then lambda, ramped over
        ``lambda_warmup_epochs`` loop epochs."""
        if self.epoch < self.contrastive_start:
            return 0.0
        warm = self.options.lambda_warmup_epochs
        if warm <= 0:
            return self.lam
        return self.lam * min(1.0, (self.epoch - self.contrastive_start + 1) / warm)

    def calibrate(self, data, train_indices) -> dict | None:
        """``cam_threshold: auto``: fit the CAM threshold on the annotated training images with the current
        weights (called by the training loop at the start of each epoch; the value is checkpointed). With
        ``diagnostics``, also the CAM-box IoU and the radiomics R^2 of the embedding (:meth:`diagnose`)."""
        out = {}
        cases = data.annotated_cases(train_indices, limit=256)
        if cases is not None and self.auto_threshold and self.use_byop:  # CAM boxes only with the BYOP loop
            images, targets, gts = cases
            dev = self.cam_threshold_value.device
            cal = calibrate_cam_threshold(self.encoder, self.parts["classifier"], images.to(dev), targets.to(dev),
                                          gts, self.cam_options, per_finding=self.per_finding_threshold,
                                          findings=self.ctx.findings)
            self.cam_threshold_value.fill_(cal.threshold)
            out.update(cam_threshold=cal.threshold, cam_calibration_miou=cal.mean_iou)
            if self.per_finding_threshold:
                self.cam_finding_thresholds.fill_(float("nan"))
                for j, f in enumerate(self.ctx.findings):
                    if f in cal.per_finding:
                        self.cam_finding_thresholds[j] = cal.per_finding[f]["threshold"]
                        out[f"cam_threshold_{f}"] = cal.per_finding[f]["threshold"]
        if self.options.diagnostics:
            out.update(self.diagnose(data, train_indices, cases))
        return out or None

    @torch.no_grad()
    def diagnose(self, data, train_indices, cases=None) -> dict:
        """Per-epoch diagnostics on the annotated training images (ground-truth boxes): ``cam_miou`` -- mean IoU
        of the Grad-CAM box (current options) with the box, and ``cam_miou_<finding>`` per finding (the finding each
        case is scored for); ``r2_global`` / ``r2_region`` -- cross-validated R^2
        of the embedding (y_i, or the map pooled over the box) explained by the box's radiomics."""
        out = {}
        dev = self.cam_threshold_value.device
        if cases is not None:
            images, targets, gts = cases
            with torch.enable_grad():
                cams = grad_cam(self.encoder, self.parts["classifier"], images.to(dev), targets.to(dev),
                                upsample_to=tuple(images.shape[-2:]), layer=self.cam_options.layer)
            opts = self.cam_options
            boxes = [cam_to_boxes(c, opts.for_finding(self.ctx.findings[int(t)])) for c, t in zip(cams.cpu(), targets)]
            ious = np.asarray([float(pairwise_iou([b[0]], g).max()) if b else 0.0 for b, g in zip(boxes, gts)])
            out["cam_miou"] = float(ious.mean())
            t = targets.cpu().numpy().astype(int)
            for j, f in enumerate(self.ctx.findings):  # one finding can collapse while the mean looks fine
                if (t == j).any():
                    out[f"cam_miou_{f}"] = float(ious[t == j].mean())
        idx = np.asarray([i for i in train_indices if data.boxes[int(i)]], dtype=np.int64)[:512]
        if len(idx) >= 10 and data.radiomics is not None:
            was = self.training
            self.eval()
            x = torch.from_numpy(np.asarray(data.store.images[idx], dtype=np.float32)).unsqueeze(1).to(dev) / 255.0
            fmap = torch.cat([self.encoder.forward_features(x[s:s + 64]) for s in range(0, len(x), 64)])
            boxes = torch.stack([torch.as_tensor(union_box(data.boxes[int(i)]).as_array()) for i in idx]).to(dev)
            rad = self.parts["radiomics_encoder"].standardizer(torch.as_tensor(data.radiomics[idx], dtype=torch.float32,
                                                                               device=dev))
            self.train(was)
            r = rad.cpu().numpy()
            out["r2_global"] = cross_validated_r2(r, self.encoder.pool(fmap).cpu().numpy())
            out["r2_region"] = cross_validated_r2(r, region_pool(fmap, boxes.float(), int(x.shape[-1])).cpu().numpy())
        return out

    def param_groups(self):
        cls = list(self.parts["classifier"].parameters())
        ids = {id(p) for p in cls}
        rest = [p for p in self.trainable_parameters() if id(p) not in ids]
        groups = [{"params": rest}]
        cls_group = {"params": cls}
        if self.classifier_warmup > 0:
            cls_group["warmup_epochs"] = self.classifier_warmup
        return groups + [cls_group]

    def after_optimizer_step(self, batch, outputs):
        self.step_count += 1

    # --- the step -----------------------------------------------------------------------------------------
    def training_step(self, batch):
        x, y = batch["image"], batch["label"]
        fmap = self.encoder.forward_features(x)
        rep = self.encoder.pool(fmap)
        logits = self.parts["classifier"](rep)
        l_fl = self.cls_loss(logits, y)
        out = {"loss_cls": l_fl.detach()}
        anchors = (y == 1).any(dim=1)
        # gathering: every rank enters the contrast (the collectives must match), with or without anchors of its own
        active = self.lam > 0 and self.epoch >= self.contrastive_start and (self._gathers or bool(anchors.any()))
        if active:
            regions, stats = self._regions(batch, anchors)
            out.update(stats)
            rad = self._start_region_radiomics(batch, regions, anchors)  # on a GPU: computed meanwhile on the CPU
            view, background, has_background = self._image_view(fmap, rep, regions, logits, y, int(x.shape[-1]))
            z_i = self.parts["image_proj"](view)
            z_bg = None if background is None else self.parts["image_proj"](background)
            rad = rad()
            z_r = torch.zeros_like(z_i)
            z_r[anchors] = self.radiomics_embedding(rad[anchors].float()).to(z_i.dtype)
            normal = batch.get("no_finding") if self.options.negatives_normal == "no_finding" else None
            labels, anchor_mask = y, anchors
            if self._gathers:  # anchors and negatives from every rank (as one process with the whole batch)
                z_i, z_r, z_bg, has_background, labels, anchor_mask, normal = _gather_contrast(
                    z_i, z_r, z_bg, has_background, y, anchors, normal)
            neg = hard_negative_mask(labels, self.ctx.findings, self.hierarchy, normal=normal) \
                if self.hierarchy is not None else None
            l_cl = self.contrast(z_i, z_r, negative_mask=neg, anchor_mask=anchor_mask, background=z_bg,
                                 background_mask=has_background)
            out["loss_contrastive"] = l_cl.detach()
        else:
            l_cl = logits.sum() * 0.0
        lam_cl = self.contrastive_weight() if active else 1.0  # inactive: l_cl is a zero keeping the graph whole
        bound = self.options.contrastive_grad_bound
        probe = active and self.training and (bound is not None or self.options.diagnostics)
        if probe:  # what each term asks of the last feature map (every rank takes this branch: active is shared)
            g_cls = _grad_norm((1 - self.lam) * l_fl, fmap)
            g_cl = _grad_norm(lam_cl * l_cl, fmap)
            if bound is not None:
                scale = torch.clamp(bound * g_cls / g_cl.clamp_min(1e-12), max=1.0)
                lam_cl, g_cl = lam_cl * scale, g_cl * scale
                out["contrastive_scale"] = scale
            if self.options.diagnostics:
                out["grad_fmap_cls"], out["grad_fmap_contrastive"] = g_cls, g_cl
        out["loss"] = lam_cl * l_cl + (1 - self.lam) * l_fl
        out["logits"] = logits.detach()
        return out

    @property
    def _gathers(self) -> bool:
        """DDP training with ``trainer.gather_negatives``: the contrast spans every rank's batch (not in
        validation: every rank validates the same batches, gathered copies would be false negatives)."""
        return self.training and self.ctx.world_size > 1 and self.ctx.gather_negatives

    def _image_view(self, fmap, rep, regions, logits, labels, size: int):
        """``(view, background, has_background)``: the image embedding paired with the radiomics
        (``embedding_pool``) and, with ``background_negative``, the same map pooled over the rest of the image and
        where there is such a rest (None, None otherwise)."""
        pool, bg = self.options.embedding_pool, self.options.background_negative
        if pool == "region":
            out = region_pool(fmap, regions, size, background=bg)
        elif pool == "cam":
            targets = select_targets(labels, logits.detach())
            out = cam_pool(fmap, self.parts["classifier"].fc.weight[targets], fallback=rep, background=bg)
        else:
            return rep, None, None
        return out if bg else (out, None, None)

    @torch.no_grad()
    def validation_step(self, batch):
        logits = self.logits(batch["image"])
        return {"loss_cls": self.cls_loss(logits, batch["label"]), "logits": logits}

    # --- BYOP regions -------------------------------------------------------------------------------------
    def _regions(self, batch, anchors) -> tuple[torch.Tensor, dict]:
        """``[B, 4]`` boxes (store pixels) for the batch; only anchor rows are meaningful: the ground-truth union
        box where annotated, else the box of the image's loop CAM (:meth:`_loop_cams`, cached for
        ``refresh_every`` steps)."""
        idx = batch["index"]
        size = int(batch["image"].shape[-1])
        boxes = batch["box"].clone()  # ground-truth union box where annotated; whole image otherwise
        stats = {}
        if not self.use_byop:
            return boxes, stats
        need_cam = anchors & ~batch["has_box"]
        if self.cache_regions:
            age = self.step_count - self.box_step[idx]
            stale = (self.box_step[idx] < 0) | (age >= self.refresh_every)
            refresh = need_cam & stale
        else:
            refresh = need_cam
        if refresh.any():
            rows = torch.nonzero(refresh).flatten()
            t0 = time.perf_counter()
            cam, targets = self._loop_cams(batch["image"][rows], batch["label"][rows], size)
            t1 = time.perf_counter()
            new, fell_back = self._boxes_of(cam, targets)
            new = new.to(boxes.dtype)
            self.timings["cam"] += t1 - t0
            self.timings["cam_rows"] = self.timings.get("cam_rows", 0) + len(rows)
            self.timings["boxing"] += time.perf_counter() - t1
            ridx = idx[rows]
            if self.cache_regions:
                had = self.box_step[ridx] >= 0
                if had.any():  # reported: share of refreshed boxes that moved substantially (IoU < 0.5)
                    stats["box_change"] = (iou(self.box_cache[ridx][had], new[had]) < 0.5).float().mean()
                # radiomics stay valid only for a box that did not change at all
                same = had & (self.box_cache[ridx].to(new.dtype) == new).all(dim=1)
                self.rad_valid[ridx[~same]] = False
                self.box_cache[ridx] = new.to(self.box_cache.dtype)
                self.box_step[ridx] = self.step_count
            boxes[rows] = new
            stats["cam_fallback"] = fell_back.float().mean()
        if self.cache_regions:
            cached = need_cam & ~refresh
            boxes[cached] = self.box_cache[idx[cached]].to(boxes.dtype)
        return boxes, stats

    def _loop_cams(self, images: torch.Tensor, labels: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cams [k, size, size], targets [k])``: the loop's Grad-CAM (seed 001 §3.2, Grad-CAM eqs. 1-2) of
        ``images`` for their highest-scoring positive finding (:func:`select_targets`), in eval mode.

        :func:`radclr.cam.gradcam.grad_cam` runs the encoder under ``no_grad`` with every module in eval mode
        (BatchNorm normalises with its running statistics and does not update them; each module's mode is
        restored) and differentiates only the layers above the CAM layer. Each image's map is therefore a
        function of that image and the weights alone -- in train mode the batch statistics of BatchNorm make
        it depend on the other images of the batch -- and it is the map :meth:`calibrate` fits the per-finding
        CAM thresholds on and evaluation thresholds. Costs one no-grad forward of the rows that need a box."""
        cam, logits = grad_cam(self.encoder, self.parts["classifier"], images, labels=labels,
                               upsample_to=(size, size), layer=self._cam_base.layer, return_logits=True)
        return cam, select_targets(labels, logits)

    def _boxes_of(self, cam: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes [k, 4], fallback [k])`` of upsampled CAMs ``[k, S, S]`` on their own device (no copy to the
        CPU on a GPU), each with the CAM options of its target finding."""
        opts = self.cam_options
        if not opts.finding_thresholds:
            return cam_top_boxes(cam, opts)
        boxes = torch.zeros(len(cam), 4, dtype=cam.dtype, device=cam.device)
        fell_back = torch.zeros(len(cam), dtype=torch.bool, device=cam.device)
        for t in torch.unique(targets).tolist():
            sel = targets == t
            boxes[sel], fell_back[sel] = cam_top_boxes(cam[sel], opts.for_finding(self.ctx.findings[int(t)]))
        return boxes, fell_back

    def _region_radiomics(self, batch, boxes, anchors) -> torch.Tensor:
        """Raw radiomics ``[B, R]`` of ``boxes`` on the store-scale image (only anchor rows computed)."""
        return self._start_region_radiomics(batch, boxes, anchors)()

    def _start_region_radiomics(self, batch, boxes, anchors):
        """Start computing :meth:`_region_radiomics`; -> a callable returning it. The radiomics are targets
        without gradient: with the images on a GPU they are computed by the CPU fast path (compiled kernels,
        :mod:`radclr.radiomics.fast`) on a CPU copy of the boxes' images, in a background thread, while the
        caller queues the image side of the step; on the CPU they are computed at once (the same values)."""
        idx = batch["index"]
        out = torch.zeros(len(idx), self.ctx.n_radiomics, dtype=torch.float64, device=boxes.device)
        if not self.use_byop:  # ablation: the fixed region's radiomics from the data pipeline
            rad = batch["radiomics"].to(torch.float64)
            return lambda: rad
        gt = anchors & batch["has_box"]
        out[gt] = batch["radiomics"][gt].to(torch.float64)
        cam_rows = anchors & ~batch["has_box"]
        if self.cache_regions:
            valid = self.rad_valid[idx] & cam_rows
            out[valid] = self.rad_cache[idx[valid]]
            todo = cam_rows & ~valid
        else:
            todo = cam_rows
        if not todo.any():
            return lambda: out
        t0 = time.perf_counter()
        rows = torch.nonzero(todo).flatten()
        # back onto the store's 0..255 grid exactly (x/255*255 is off by up to 6e-6, enough to move a value
        # that sits on a bin edge into the neighbouring bin)
        images = torch.round(batch["image"][rows, 0].detach().to(torch.float64) * 255.0)
        region_boxes = boxes[rows].detach()
        job = None
        offload = self.radiomics_in_thread
        if offload is None:
            offload = images.device.type != "cpu" and kernels.AVAILABLE
        if offload:
            images, region_boxes = images.cpu(), region_boxes.cpu()
            job = _radiomics_worker().submit(self.regions.of_boxes, images, region_boxes)
        else:
            vals = self.regions.of_boxes(images, region_boxes)

        def finish() -> torch.Tensor:
            nonlocal vals
            if job is not None:
                vals = job.result()
            vals = vals.to(out.device, non_blocking=True)
            out[rows] = vals
            if self.cache_regions:
                self.rad_cache[idx[rows]] = vals
                self.rad_valid[idx[rows]] = True
            self.timings["radiomics"] += time.perf_counter() - t0
            self.timings["regions"] += len(rows)
            return out

        return finish


_WORKER: list = []


def _radiomics_worker() -> ThreadPoolExecutor:
    """The one background thread computing BYOP's radiomics of GPU batches on the CPU (kernels release the GIL)."""
    if not _WORKER:
        _WORKER.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="radclr-radiomics"))
    return _WORKER[0]


def _gather_contrast(z_i, z_r, z_bg, has_background, labels, anchors, normal):
    """The contrast's inputs concatenated over the ranks in rank order: embeddings with their gradient path
    (:func:`radclr.runtime.distributed.gather_with_grad`), and the labels, anchor and normal flags the
    hierarchy mask and the anchor mean need. Every rank then computes the same loss over the global batch."""
    def flags(t):
        return None if t is None else gather_no_grad(t.to(torch.uint8)).bool()

    z_i, z_r = gather_with_grad(z_i), gather_with_grad(z_r)
    z_bg = None if z_bg is None else gather_with_grad(z_bg)
    return z_i, z_r, z_bg, flags(has_background), gather_no_grad(labels), flags(anchors), flags(normal)


def region_pool(fmap: torch.Tensor, boxes: torch.Tensor, image_size: int, *, background: bool = False):
    """``[B, C]``: the mean of ``fmap [B, C, h, w]`` over each image's box (``[B, 4]`` x, y, w, h in input pixels
    of an ``image_size`` square input), the box moved to the map's grid by the one box -> pixels rule
    (:func:`radclr.boxes.boxes_to_masks`: every cell the box touches); a box that covers no cell pools the whole
    map (global average pooling). With ``background``: ``(region, rest, has_rest)``, ``rest`` the mean over the
    cells outside the box, ``has_rest [B]`` false where the box covers the whole map."""
    b, c, h, w = fmap.shape
    scale = boxes.new_tensor([w / image_size, h / image_size, w / image_size, h / image_size])
    masks = boxes_to_masks(boxes * scale, (h, w), device=fmap.device)
    empty = ~masks.flatten(1).any(dim=1)
    if bool(empty.any()):
        masks[empty] = True
    inside = _weighted_mean(fmap, masks.to(fmap.dtype).flatten(1))
    if not background:
        return inside
    outside = (~masks).to(fmap.dtype).flatten(1)
    return inside, _weighted_mean(fmap, outside), outside.sum(dim=1) > 0


def _weighted_mean(fmap: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``[B, C]`` weighted mean of ``fmap [B, C, h, w]`` with ``weights [B, h*w]`` (zero rows for zero weight)."""
    return torch.einsum("bcn,bn->bc", fmap.flatten(2), weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12))


def cam_pool(fmap: torch.Tensor, weights: torch.Tensor, *, fallback: torch.Tensor, background: bool = False):
    """``[B, C]``: ``fmap [B, C, h, w]`` averaged with the class activation map of each image's target as weights,
    ``cam = ReLU(w . A(u, v))`` with ``weights [B, C]`` the target's classifier row (for global pooling + a linear
    classifier this is Grad-CAM up to a constant; differentiable, no second-order terms). A map without any
    positive cell gives ``fallback`` (the global average). With ``background``: ``(attended, rest, has_rest)``,
    ``rest`` pooled with the inverted attention ``1 - cam / max(cam)``, ``has_rest [B]`` false where the map has no
    positive cell."""
    cam = torch.relu(torch.einsum("bc,bchw->bhw", weights, fmap)).flatten(1)  # [B, h*w]
    mass = cam.sum(dim=1, keepdim=True)
    pooled = torch.einsum("bcn,bn->bc", fmap.flatten(2), cam / mass.clamp_min(1e-12))
    attended = torch.where(mass > 0, pooled, fallback)
    if not background:
        return attended
    rest = _weighted_mean(fmap, 1.0 - cam / cam.amax(dim=1, keepdim=True).clamp_min(1e-12))
    return attended, rest, mass[:, 0] > 0


def _grad_norm(loss: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(loss, fmap, retain_graph=True, allow_unused=True)
    return torch.zeros((), device=fmap.device) if g is None else g.detach().float().norm()
