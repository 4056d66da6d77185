"""The BYOP loop's Grad-CAM does not mix images (issue 21, flaw 2).

Seed 001 §3.2 cuts each unannotated image's box from its Grad-CAM. Computed from the training forward, the map of
image i would pass through train-mode BatchNorm, whose batch statistics make it a function of the other images of
the batch too -- and the per-finding CAM thresholds are calibrated on eval-mode maps. The loop's CAM is the
eval-mode map of the image alone: unchanged when the rest of the batch changes, equal to what calibration and
evaluation compute, and computing it moves no BatchNorm statistic and leaves every module's mode as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from radclr.cam.boxes import upsample_cam
from radclr.cam.gradcam import grad_cam, grad_cam_from_activations, target_scores
from radclr.methods import MethodContext, method_class
from radclr.radiomics import feature_names

S = 64
FINDINGS = ["Mass", "Nodule"]


def _byop(layer: str):
    ctx = MethodContext(findings=FINDINGS, radiomics_names=feature_names(), image_size=S, dataset_size=8,
                        model_cfg={"encoder": "resnet18", "encoder_options": {"width": 0.25, "no_max_pool": True},
                                   "weights": None, "proj_hidden": 32, "proj_dim": 16,
                                   "radiomics_hidden": [32, 32], "radiomics_dim": 16},
                        extra={"radiomics_cfg": {"bin_width": 25.0}})
    torch.manual_seed(2)  # an initialisation whose map of image 0 is not all zero at either layer
    method = method_class("byop")(nn.ModuleDict(), ctx, {"loss": "bce", "negatives": "in_batch",
                                                          "cam_layer": layer, "cam_threshold": 0.5})
    for m in method.encoder.modules():  # running statistics unlike any batch's, so train and eval maps differ
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return method.train()


def _batch(seed: int):
    """Four unannotated disease-positive images; image 0 is the same in every batch, the others depend on
    ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 + 0.3 * torch.rand(4, 1, S, S, generator=g)
    x[0] = 0.1
    x[0, 0, 10:26, 30:46] = 0.9  # image 0: one bright lesion
    x = torch.round(x * 255) / 255
    return {"image": x, "index": torch.arange(4), "label": torch.tensor([[1.0, 0], [0, 1], [1, 0], [0, 1]]),
            "has_box": torch.zeros(4, dtype=torch.bool), "box": torch.tensor([[0.0, 0, S, S]] * 4)}


def _loop_cam_of_image_0(method, batch):
    """The CAM the loop thresholds for image 0 in ``batch`` (through :meth:`BYOP._regions`)."""
    seen = []
    original = method._boxes_of
    method._boxes_of = lambda cam, targets: (seen.append((cam.clone(), targets.clone())), original(cam, targets))[1]
    try:
        method._regions(batch, torch.ones(4, dtype=torch.bool))
    finally:
        method._boxes_of = original
    (cam, targets), = seen
    return cam[0], int(targets[0])


def _bn_state(method):
    return {k: v.clone() for k, v in method.encoder.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("layer", ["layer3", "last"])
def test_one_images_loop_cam_does_not_depend_on_the_rest_of_its_batch(layer):
    method = _byop(layer)
    before = _bn_state(method)
    cams = []
    for seed in (1, 2):
        method.box_step.fill_(-1)  # every anchor's box is refreshed
        cams.append(_loop_cam_of_image_0(method, _batch(seed)))
    (cam_a, t_a), (cam_b, t_b) = cams
    assert t_a == t_b == 0
    assert cam_a.max() > 0
    torch.testing.assert_close(cam_a, cam_b, rtol=1e-5, atol=1e-6)
    # ... and it is the eval-mode map of the image alone: what calibration and evaluation compute
    alone = grad_cam(method.encoder, method.parts["classifier"], _batch(1)["image"][:1], torch.tensor([0]),
                     upsample_to=(S, S), layer=layer)[0]
    torch.testing.assert_close(cam_a, alone, rtol=1e-4, atol=1e-6)
    # computing it moved no BatchNorm statistic and left every module in train mode
    assert all(torch.equal(before[k], v) for k, v in _bn_state(method).items())
    assert all(m.training for m in method.modules())


def test_the_train_mode_map_of_the_training_forward_would_mix_images():
    """The control: the layer3 Grad-CAM of the training forward (the loop's CAM before the fix) changes with the
    other images of the batch -- so the test above can tell the two apart."""
    method = _byop("layer3")
    cams = []
    for seed in (1, 2):
        x = _batch(seed)["image"]
        a3, fmap = method.encoder.feature_maps(x, "layer3")
        logits = method.parts["classifier"](method.encoder.pool(fmap))
        cams.append(upsample_cam(grad_cam_from_activations(a3, target_scores(logits, torch.zeros(4, dtype=torch.long))),
                                 (S, S))[0])
    assert not torch.allclose(cams[0], cams[1], rtol=1e-3, atol=1e-4)
