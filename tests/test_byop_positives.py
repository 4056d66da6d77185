"""BYOP's positives (seed 001 §3.2): for an unannotated disease-positive image the radiomics view is computed from the
box its own Grad-CAM gives, for an annotated one from the ground-truth box -- checked on the values the radiomics
encoder receives, so a silent fall-back to the fixed region (the whole image) would fail here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from radclr.methods import MethodContext, method_class
from radclr.radiomics import feature_names
from radclr.radiomics.regions import RegionRadiomics

REPO = Path(__file__).resolve().parents[1]
S = 64
FINDINGS = ["Mass", "Nodule"]


def _byop(options: dict):
    """A small BYOP method (ResNet-18 width 0.25, 64 px, the two findings) with ``options``."""
    ctx = MethodContext(findings=FINDINGS, radiomics_names=feature_names(), image_size=S, dataset_size=4,
                        model_cfg={"encoder": "resnet18", "encoder_options": {"width": 0.25, "no_max_pool": True},
                                   "weights": None, "proj_hidden": 32, "proj_dim": 16,
                                   "radiomics_hidden": [32, 32], "radiomics_dim": 16},
                        extra={"radiomics_cfg": {"bin_width": 25.0}})
    return method_class("byop")(nn.ModuleDict(), ctx, options)


def _unannotated_batch():
    """(batch of the four images without boxes -- three disease-positive, one normal --, their whole-image
    radiomics)."""
    images = _images()
    whole = RegionRadiomics({"bin_width": 25.0}).of_boxes(torch.round(images[:, 0].double() * 255),
                                                         torch.tensor([[0.0, 0, S, S]] * 4))
    batch = {"image": images, "index": torch.arange(4), "label": torch.tensor([[1.0, 0], [0, 1], [1, 0], [0, 0]]),
             "has_box": torch.zeros(4, dtype=torch.bool), "box": torch.tensor([[0.0, 0, S, S]] * 4),
             "no_finding": torch.tensor([False, False, False, True]), "radiomics": whole.float()}
    return batch, whole


def _images():
    """Four images with a bright blob each at a different place (dark background)."""
    x = torch.full((4, 1, S, S), 0.1)
    for i, (r, c) in enumerate([(8, 8), (40, 12), (16, 44), (44, 44)]):
        x[i, 0, r:r + 12, c:c + 12] = 0.9
    return torch.round(x * 255) / 255


@pytest.mark.parametrize("pool", ["global", "cam"])
def test_unannotated_anchors_get_the_radiomics_of_their_grad_cam_box(pool):
    torch.manual_seed(0)
    names = feature_names()
    method = _byop({"loss": "bce", "negatives": "in_batch", "embedding_pool": pool, "cam_threshold": 0.8})
    images = _images()
    service = RegionRadiomics({"bin_width": 25.0})
    whole = service.of_boxes(torch.round(images[:, 0].double() * 255), torch.tensor([[0.0, 0, S, S]] * 4))
    method.parts["radiomics_encoder"].standardizer.fit(whole.float())
    gt_box = torch.tensor([12.0, 40.0, 12.0, 12.0])  # image 1 is annotated: its blob's box
    batch = {"image": images, "index": torch.arange(4),
             "label": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]),
             "has_box": torch.tensor([False, True, False, False]),
             "box": torch.stack([torch.tensor([0.0, 0, S, S]), gt_box, torch.tensor([0.0, 0, S, S]),
                                 torch.tensor([0.0, 0, S, S])]),
             "no_finding": torch.tensor([False, False, False, True])}
    gt_rad = service.of_boxes(torch.round(images[1:2, 0].double() * 255), gt_box[None])[0]
    batch["radiomics"] = whole.clone().float()
    batch["radiomics"][1] = gt_rad.float()  # the data pipeline's fixed region: GT box where annotated, else whole
    seen = []
    original = method.radiomics_embedding
    method.radiomics_embedding = lambda r: (seen.append(r.detach().clone()), original(r))[1]
    out = method.training_step(batch)
    assert torch.isfinite(out["loss"]) and "loss_contrastive" in out
    (rad,) = seen  # rows of the anchors 0, 1, 2 (image 3 is normal)
    assert rad.shape == (3, len(names))
    cam_boxes = method.box_cache[[0, 2]]
    assert bool((method.box_step[[0, 2]] == 0).all()) and int(method.box_step[1]) == -1  # CAM only where unannotated
    assert bool((cam_boxes[:, 2:] < S).any(dim=1).all())  # real boxes, not the whole-image fallback
    expected = service.of_boxes(torch.round(images[[0, 2], 0].double() * 255), cam_boxes).float()
    torch.testing.assert_close(rad[[0, 2]], expected)  # positives of unannotated anchors: their CAM boxes
    torch.testing.assert_close(rad[1], gt_rad.float())  # the annotated anchor: its ground-truth box
    assert not torch.allclose(rad[[0, 2]], whole[[0, 2]].float())  # not the fixed (whole-image) radiomics
    assert np.isfinite(rad.numpy()).all()


def test_diagnostics_do_not_change_the_step():
    """``diagnostics: true`` only reads gradients (autograd.grad to the feature map): loss and parameter gradients
    of a step are the same with and without it."""
    batch, whole = _unannotated_batch()
    grads = []
    for diagnostics in (False, True):
        torch.manual_seed(0)
        method = _byop({"loss": "bce", "negatives": "in_batch", "embedding_pool": "cam", "background_negative": True,
                        "diagnostics": diagnostics})
        method.parts["radiomics_encoder"].standardizer.fit(whole.float())
        out = method.training_step(batch)
        out["loss"].backward()
        assert ("grad_fmap_contrastive" in out) == diagnostics
        grads.append((out["loss"].detach(), [p.grad.clone() for p in method.parameters() if p.grad is not None]))
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1]))


@pytest.mark.parametrize("warm", [0, 3])
def test_lambda_warmup_ramps_only_the_contrastive_weight(warm):
    """``lambda_warmup_epochs``: loop epoch k trains with lambda * min(1, (k + 1) / warm) on L_cl (0 before the
    loop); the classification weight stays 1 - lambda, and the loss is exactly that combination of the two terms."""
    torch.manual_seed(0)
    method = _byop({"loss": "bce", "negatives": "in_batch", "lambda": 0.4, "cam_threshold": 0.8,
                    "contrastive_start_epoch": 2, "lambda_warmup_epochs": warm})
    expected = {0: 0.0, 1: 0.0, 2: 0.4 / 3, 3: 0.8 / 3, 4: 0.4, 7: 0.4} if warm else {0: 0.0, 1: 0.0, 2: 0.4, 7: 0.4}
    for epoch, lam in expected.items():
        method.on_epoch_start(epoch)
        assert method.contrastive_weight() == pytest.approx(lam)
    batch, whole = _unannotated_batch()
    method.parts["radiomics_encoder"].standardizer.fit(whole.float())
    method.on_epoch_start(2)  # the loop's first epoch
    out = method.training_step(batch)
    lam_cl = 0.4 / 3 if warm else 0.4
    torch.testing.assert_close(out["loss"], lam_cl * out["loss_contrastive"] + 0.6 * out["loss_cls"])
    with pytest.raises(Exception, match="lambda_warmup_epochs"):
        _byop({"lambda_warmup_epochs": -1})


def test_diagnostics_cam_iou_per_finding():
    """``cam_miou_<finding>``: the CAM-box IoU of the cases scored for that finding -- the same value as the mean
    of a diagnosis of those cases alone (a finding can collapse while the mean over findings looks fine); the mean
    over all cases stays ``cam_miou``; a finding without annotated cases gets no column."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    method = _byop({"loss": "bce", "diagnostics": True, "cam_layer": "last"}).eval()
    images = _images()[:3]
    targets = torch.tensor([0, 1, 0])
    gts = [np.array([[8.0, 8, 12, 12]]), np.array([[12.0, 40, 12, 12]]), np.array([[0.0, 0, 64, 64]])]
    data = SimpleNamespace(boxes=[[] for _ in range(3)], radiomics=None)  # no R^2 part
    both = method.diagnose(data, np.arange(3), (images, targets, gts))
    mass = method.diagnose(data, np.arange(3), (images[[0, 2]], targets[[0, 2]], [gts[0], gts[2]]))
    nodule = method.diagnose(data, np.arange(3), (images[[1]], targets[[1]], [gts[1]]))
    assert both["cam_miou_Mass"] == pytest.approx(mass["cam_miou"], abs=1e-6)
    assert both["cam_miou_Nodule"] == pytest.approx(nodule["cam_miou"], abs=1e-6)
    assert both["cam_miou"] == pytest.approx((2 * mass["cam_miou"] + nodule["cam_miou"]) / 3, abs=1e-6)
    assert "cam_miou_Nodule" not in mass and mass["cam_miou_Mass"] == pytest.approx(mass["cam_miou"])
    assert 0.0 < both["cam_miou_Mass"] <= 1.0  # the whole-image truth overlaps any CAM box



def _step_with_fmap(method, batch):
    """(step outputs, the gradient of the step's loss into the last feature map)."""
    captured = {}
    orig = method.encoder.forward_features

    def capture(x):  # the step's own forward comes first (the loop's CAMs run their own no-grad forward later)
        fmap = orig(x)
        captured.setdefault("fmap", fmap)
        return fmap

    method.encoder.forward_features = capture
    try:
        out = method.training_step(batch)
    finally:
        method.encoder.forward_features = orig
    (g,) = torch.autograd.grad(out["loss"], captured["fmap"], retain_graph=True)
    return out, g


@pytest.mark.parametrize("bound", [0.5, 1e9])
def test_contrastive_grad_bound_caps_the_contrastive_gradient(bound):
    """``contrastive_grad_bound: b``: the contrastive term sends at most b times the classification term's gradient
    into the last feature map. Same weights and batch with and without the bound: the map's gradient is
    g_cls + g_cl unbounded and g_cls + s g_cl bounded, which gives both terms; s g_cl must be b g_cls in norm when
    the bound binds. A bound that does not bind leaves the step exactly as without it."""
    batch, whole = _unannotated_batch()
    opts = {"loss": "bce", "negatives": "in_batch", "embedding_pool": "cam", "background_negative": True}
    results = []
    for o in (opts, {**opts, "contrastive_grad_bound": bound}):
        torch.manual_seed(0)
        method = _byop(o)
        method.parts["radiomics_encoder"].standardizer.fit(whole.float())
        out, g = _step_with_fmap(method, batch)
        out["loss"].backward()
        results.append((out, g, [p.grad.clone() for p in method.parameters() if p.grad is not None]))
    (free, g_free, grads_free), (capped, g_cap, grads_cap) = results
    scale = float(capped["contrastive_scale"])
    if bound > 1e6:
        assert scale == 1.0
        assert torch.equal(free["loss"].detach(), capped["loss"].detach())
        assert all(torch.equal(a, b) for a, b in zip(grads_free, grads_cap))
    else:
        assert 0.0 < scale < 1.0  # at initialisation the contrast outweighs classification: the bound binds
        g_cl = (g_free - g_cap) / (1 - scale)
        g_cls = g_free - g_cl
        assert float((scale * g_cl).norm()) == pytest.approx(bound * float(g_cls.norm()), rel=1e-3)
        assert float(capped["loss"].detach()) < float(free["loss"].detach())  # the contrastive weight was scaled down


def test_contrastive_grad_bound_must_be_positive():
    """Refused by the config check (before any run directory exists) and by the method; so are BYOP's other
    option rules (lambda in [0, 1], warm-up >= 0, a background negative needs a pooled view)."""
    from radclr.engine.config import resolve_config, validate_config
    from radclr.errors import ConfigError

    with pytest.raises(ConfigError, match="contrastive_grad_bound"):
        _byop({"contrastive_grad_bound": 0})
    for bad, name in (("contrastive_grad_bound=-1", "contrastive_grad_bound"), ("lambda=2", "lambda"),
                      ("lambda_warmup_epochs=-1", "lambda_warmup_epochs"),
                      ("embedding_pool=global", "background_negative")):
        with pytest.raises(ConfigError, match=name):
            validate_config(resolve_config(REPO / "configs" / "phantom" / "byop.yaml", [f"stages.0.{bad}"]))
