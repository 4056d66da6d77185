"""Batched Grad-CAM that reuses a training forward pass (seed 001 §3.2, "Bounding Boxes Generation").

Seed 001 feeds the fourth (last convolutional) layer of the image encoder f_i to Grad-CAM
(Selvaraju et al., seed 001 ref. [30]) to obtain an attention map per image, which BYOP thresholds into a box.
For a feature map ``A`` of shape ``[C, h, w]`` and a class score ``y``::

    alpha_c = mean_{u,v} dy / dA_c[u, v]            (Grad-CAM eq. 1: global-average-pooled gradients)
    L       = ReLU( sum_c alpha_c * A_c )           (Grad-CAM eq. 2)

Why not MONAI's ``GradCAM``: it calls ``model.eval()`` and ``model.zero_grad()`` and runs its own forward and
``backward()``, which inside a training step would switch BatchNorm to eval statistics, wipe the gradients
being accumulated and leave the score's gradient in every parameter's ``.grad``. Here the CAM is computed from
the activations of the forward pass that training already did, with :func:`torch.autograd.grad` restricted to
the feature map: no parameter ``.grad`` is written, no module mode changes, no forward runs (so BatchNorm
running statistics cannot move), and the graph is retained for the training loss's own ``backward()``.

Several targets per image (``scores`` of shape ``[B, K]``) cost one backward *through the classifier head
only* per target (autograd stops at the feature map), or optionally one vmap-batched backward
(``is_grads_batched=True``); on CPU the loop measured as fast or faster (``docs/localization.md``).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from radclr.cam.boxes import upsample_cam

log = logging.getLogger(__name__)

__all__ = [
    "grad_cam_from_activations",
    "grad_cam",
    "select_targets",
    "target_scores",
]


def grad_cam_from_activations(
    fmap: Tensor,
    scores: Tensor,
    *,
    retain_graph: bool = True,
    batched: bool = False,
) -> Tensor:
    """Grad-CAM maps from a feature map that is part of an autograd graph (seed 001 §3.2; Grad-CAM eqs. 1-2).

    Parameters
    ----------
    fmap:
        ``[B, C, h, w]`` activations of the Grad-CAM layer (the encoder's last conv block), taken from the
        training forward pass; it must require grad (i.e. be connected to the graph that produced ``scores``).
    scores:
        ``[B]`` (one target per image) or ``[B, K]`` (K targets per image) class scores (logits) computed from
        ``fmap``. Row ``i`` must depend on ``fmap[i]`` only -- true for global pooling + linear classifier.
        (A train-mode BatchNorm *between* ``fmap`` and the scores couples the samples of a batch; then the
        gradient of row ``i`` also carries the other rows' scores. Layers *before* ``fmap`` do not matter.)
    retain_graph:
        keep the graph for the training loss's ``backward()`` (default). Pass ``False`` when the graph is no
        longer needed (evaluation).
    batched:
        for ``K > 1`` targets: ``False`` (default) runs one backward *through the head only* per target and
        reduces each gradient at once; ``True`` runs one vmap-batched backward (``is_grads_batched``) over all
        K one-hot ``grad_outputs`` (falls back to the loop, with a warning, if an operator lacks a vmap rule).
        On CPU the loop measured as fast or faster (the batched call materialises a ``[K, B, C, h, w]``
        gradient); numbers in docs/localization.md.

    Returns
    -------
    ``float32`` CAMs, detached: ``[B, h, w]`` for 1-D ``scores``, ``[B, K, h, w]`` for 2-D ``scores``. Values are
    ``>= 0`` (ReLU) in the units of ``fmap`` x gradient; normalise with :func:`radclr.cam.boxes.normalize_cam`.

    Side effects: none on parameters (``torch.autograd.grad`` only returns the gradient w.r.t. ``fmap``; no
    ``.grad`` is accumulated), module modes, BatchNorm statistics or the random state. Call it *before* the
    training loss's ``backward()`` (which frees the graph unless told otherwise).
    """
    if fmap.ndim != 4:
        raise ValueError(f"fmap must be [B, C, h, w], got shape {tuple(fmap.shape)}")
    if scores.ndim not in (1, 2) or scores.shape[0] != fmap.shape[0]:
        raise ValueError(
            f"scores must be [B] or [B, K] with B = fmap.shape[0] = {fmap.shape[0]}, got shape "
            f"{tuple(scores.shape)}"
        )
    if not fmap.requires_grad or scores.grad_fn is None:
        raise ValueError(
            "Grad-CAM needs fmap and scores to be connected by autograd: compute them with gradients enabled "
            f"(fmap.requires_grad={fmap.requires_grad}, scores.grad_fn={scores.grad_fn})"
        )
    single = scores.ndim == 1
    if single:
        grad = _grad_wrt_fmap(scores.sum(), fmap, None, retain_graph)  # [B, C, h, w]; rows are independent
        weights = _channel_weights(grad).unsqueeze(1)  # [B, 1, C]
    else:
        weights = _multi_target_weights(fmap, scores, retain_graph=retain_graph, batched=batched)  # [B, K, C]
    # eq. 2: ReLU of the gradient-weighted channel sum, as one batched matmul [B, K, C] @ [B, C, h*w]
    b, c, h, w = fmap.shape
    with torch.autocast(device_type=fmap.device.type, enabled=False):  # float32 even inside an AMP step
        cam = F.relu(torch.bmm(weights, fmap.detach().float().reshape(b, c, h * w))).reshape(b, -1, h, w)
    return cam[:, 0] if single else cam


def _channel_weights(grad: Tensor) -> Tensor:
    """Grad-CAM eq. 1: alpha_c = spatial mean of d score / d A_c (float32)."""
    return grad.float().mean(dim=(-2, -1))


def _grad_wrt_fmap(scores: Tensor, fmap: Tensor, grad_outputs: Tensor | None, retain_graph: bool,
                   is_grads_batched: bool = False) -> Tensor:
    # a scalar output without grad_outputs where possible: passing grad_outputs makes torch import sympy
    # on first use (~0.6 s once per process)
    (grad,) = torch.autograd.grad(
        scores,
        fmap,
        grad_outputs=grad_outputs,
        retain_graph=retain_graph,
        allow_unused=True,
        is_grads_batched=is_grads_batched,
    )
    if grad is None:
        raise ValueError("scores do not depend on fmap: pass the scores computed from this feature map")
    return grad


def _multi_target_weights(fmap: Tensor, scores: Tensor, *, retain_graph: bool, batched: bool) -> Tensor:
    """Grad-CAM channel weights of every target k: ``[B, K, C]``."""
    k = scores.shape[1]
    if k > 1 and batched:
        # one-hot grad_outputs: slice k selects target k of every image
        eye = torch.eye(k, dtype=scores.dtype, device=scores.device)
        grad_outputs = eye[:, None, :].expand(k, scores.shape[0], k).contiguous()  # [K, B, K]
        try:
            # graph retained in any case: if vmap fails midway the fallback loop still needs it
            g = _grad_wrt_fmap(scores, fmap, grad_outputs, True, is_grads_batched=True)  # [K, B, C, h, w]
            return _channel_weights(g).transpose(0, 1)
        except RuntimeError as e:  # an operator without a vmap batching rule
            log.warning("vmap-batched Grad-CAM backward unsupported (%s); one backward per target", e)
    # one backward per target, each gradient reduced at once (peak memory of one [B, C, h, w] gradient)
    out = [
        _channel_weights(_grad_wrt_fmap(scores[:, j].sum(), fmap, None, retain_graph or j < k - 1))
        for j in range(k)
    ]
    return torch.stack(out, dim=1)


def target_scores(logits: Tensor, targets: Tensor | int | Sequence[int]) -> Tensor:
    """The logits of the target findings: ``[B]`` for targets ``int`` / ``[B]``, ``[B, K]`` for ``[B, K]``.

    A target of ``-1`` means "no target" for that image: its score is ``0 * logits[:, 0]`` (connected to the
    graph, zero gradient), so its CAM is all zeros and box extraction falls back (counted there).
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be [B, F], got shape {tuple(logits.shape)}")
    b, f = logits.shape
    if isinstance(targets, int):
        t = torch.full((b,), targets, dtype=torch.long, device=logits.device)
    else:
        t = torch.as_tensor(targets, dtype=torch.long, device=logits.device)
    if t.ndim not in (1, 2) or t.shape[0] != b:
        raise ValueError(f"targets must be an int, [B] or [B, K] with B = {b}, got shape {tuple(t.shape)}")
    if (t >= f).any() or (t < -1).any():
        raise ValueError(f"targets must lie in [-1, {f - 1}] (F = {f} findings), got {t.tolist()}")
    flat = t.reshape(b, -1)
    picked = logits.gather(1, flat.clamp(min=0))
    picked = torch.where(flat >= 0, picked, picked * 0)
    return picked.reshape(t.shape)


def select_targets(labels: Tensor, logits: Tensor, *, no_positive: str = "argmax") -> Tensor:
    """The finding whose CAM gives an image's BYOP box during training: ``[B]`` long.

    Rule (documented in docs/localization.md): among the image's positive findings (``labels == 1``; NaN =
    unknown counts as not positive) the one with the highest current logit -- for an image with a single
    positive, that finding. Images with no positive get ``argmax`` of the logits (the network's most suspected
    finding; ``no_positive="argmax"``) or ``-1`` (``no_positive="none"``: no target, zero CAM, fallback box).
    To get one CAM per positive finding instead, call :func:`grad_cam_from_activations` with all logits
    (``[B, F]``) and index the result with ``labels == 1``.
    """
    if labels.shape != logits.shape or labels.ndim != 2:
        raise ValueError(
            f"labels and logits must both be [B, F], got {tuple(labels.shape)} and {tuple(logits.shape)}"
        )
    if no_positive not in ("argmax", "none"):
        raise ValueError(f"no_positive must be 'argmax' or 'none', got {no_positive!r}")
    with torch.no_grad():
        lg = logits.detach().float()
        positive = labels == 1  # NaN == 1 is False
        masked = torch.where(positive, lg, torch.full_like(lg, float("-inf")))
        targets = masked.argmax(dim=1)
        has_pos = positive.any(dim=1)
        fallback = lg.argmax(dim=1) if no_positive == "argmax" else torch.full_like(targets, -1)
        return torch.where(has_pos, targets, fallback)


def grad_cam(
    encoder,
    classifier: Callable[[Tensor], Tensor],
    images: Tensor,
    targets: Tensor | int | Sequence[int] | None = None,
    *,
    upsample_to: tuple[int, int] | None = None,
    eval_mode: bool = True,
    return_logits: bool = False,
    layer: str = "last",
    labels: Tensor | None = None,
):
    """Grad-CAM for evaluation / prediction from an encoder and a linear classifier (seed 001 §3.2, Fig. 5).

    ``encoder.forward_features(images) -> fmap [B, C, h, w]`` (the Grad-CAM layer) and
    ``encoder.pool(fmap) -> [B, D]``; ``classifier([B, D]) -> logits [B, F]``. Any callables with these
    signatures work. ``layer="layer3"`` (encoders with ``feature_maps``/``forward_from``): the CAM of that stage's
    map, the scores computed on through the rest of the network.

    ``targets``: ``None`` (the argmax logit of each image, or with ``labels [B, F]`` the training rule of
    :func:`select_targets` on this call's logits), an ``int`` (same finding for all), ``[B]`` (one finding per
    image; ``-1`` = none, zero map) or ``[B, K]`` (K findings per image -> ``[B, K, ...]`` maps).

    The encoder body runs under ``no_grad`` (Grad-CAM needs only d score / d fmap), so no graph is built through
    the backbone and no parameter receives a ``.grad``. With ``eval_mode=True`` (default) every ``nn.Module``
    among ``encoder``/``classifier`` is put in eval mode for the call and each submodule's own training flag is
    restored afterwards; with ``eval_mode=False`` modes are left as they are (then a train-mode BatchNorm would
    update its running statistics during this forward -- avoid it).

    Returns ``cam`` (detached float32, ``[B, h, w]`` or ``[B, K, h, w]``; bilinearly upsampled to
    ``upsample_to = (H, W)`` if given), or ``(cam, logits)`` with ``return_logits=True``.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    modules = [m for m in (encoder, classifier) if isinstance(m, torch.nn.Module)]
    saved = [(sub, sub.training) for m in modules for sub in m.modules()]
    try:
        if eval_mode:
            for m in modules:
                m.eval()
        with torch.no_grad():
            fmap = encoder.forward_features(images) if layer == "last" else encoder.feature_maps(images, layer)[0]
        if fmap.ndim != 4:
            raise ValueError(f"encoder.forward_features must return [B, C, h, w], got shape {tuple(fmap.shape)}")
        with torch.enable_grad():
            fmap = fmap.detach().requires_grad_(True)
            last = fmap if layer == "last" else encoder.forward_from(layer, fmap)
            logits = classifier(encoder.pool(last))
            if targets is None:
                targets = logits.detach().argmax(dim=1) if labels is None else select_targets(labels, logits)
            scores = target_scores(logits, targets)
            cam = grad_cam_from_activations(fmap, scores, retain_graph=False)
    finally:
        for sub, flag in saved:
            sub.training = flag
    if upsample_to is not None:
        cam = upsample_cam(cam, upsample_to)
    return (cam, logits.detach()) if return_logits else cam
