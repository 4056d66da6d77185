"""Grad-CAM (seed 001 §3.2): agreement with MONAI's and a hook-based reference, no side effects on the training
step, behaviour on synthetic nets whose evidence location is known, and bad input."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from radclr.cam.gradcam import grad_cam, grad_cam_from_activations, select_targets, target_scores


class TinyEncoder(nn.Module):
    """The encoder interface radclr's networks provide: forward_features -> [B, C, h, w], pool -> [B, D]."""

    def __init__(self, c: int = 6):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
        )

    def forward_features(self, x):
        return self.body(x)

    def pool(self, fmap):
        return fmap.mean(dim=(2, 3))


class Whole(nn.Module):
    """encoder + classifier as one module (what MONAI's GradCAM expects)."""

    def __init__(self, encoder, classifier):
        super().__init__()
        self.encoder, self.classifier = encoder, classifier

    def forward(self, x):
        return self.classifier(self.encoder.pool(self.encoder.forward_features(x)))


def make_net(seed: int = 0, findings: int = 3):
    torch.manual_seed(seed)
    enc, cls = TinyEncoder(), nn.Linear(6, findings)
    # non-trivial BN statistics so that train/eval mode matters
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return enc, cls


def images(b: int = 4, size: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 1, size, size, generator=g)


def hook_reference(model: Whole, layer: nn.Module, x, targets):
    """Plain per-image Grad-CAM with forward/backward hooks on a copy (eval mode): the textbook algorithm."""
    model = copy.deepcopy(model).eval()
    layer = dict(model.named_modules())[layer]
    maps = []
    for i in range(x.shape[0]):
        store = {}
        h1 = layer.register_forward_hook(lambda m, inp, out: store.__setitem__("a", out))
        h2 = layer.register_full_backward_hook(lambda m, gin, gout: store.__setitem__("g", gout[0]))
        logits = model(x[i:i + 1])
        model.zero_grad()
        logits[0, int(targets[i])].backward()
        h1.remove(), h2.remove()
        w = store["g"].mean(dim=(2, 3), keepdim=True)
        maps.append(F.relu((w * store["a"]).sum(1))[0].detach())
    return torch.stack(maps)


# --- reference agreement ------------------------------------------------------------------------------------
def test_matches_monai_gradcam_in_eval_mode():
    from monai.visualize import GradCAM

    enc, cls = make_net()
    x = images()
    ours = grad_cam(enc, cls, x, targets=2)
    ref_model = copy.deepcopy(Whole(enc, cls))
    ref = GradCAM(nn_module=ref_model, target_layers="encoder.body.5").compute_map(x, class_idx=2)[:, 0]
    assert ours.shape == ref.shape == (4, 8, 8)
    assert ours.abs().max() > 0
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-4, atol=1e-6)


def test_matches_hook_reference_per_image_targets():
    enc, cls = make_net(seed=3)
    x = images(b=5, seed=4)
    targets = torch.tensor([0, 2, 1, 1, 0])
    ours = grad_cam(enc, cls, x, targets=targets)
    ref = hook_reference(Whole(enc, cls), "encoder.body.5", x, targets)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)


def test_multi_target_equals_single_target_calls_batched_or_looped():
    enc, cls = make_net()
    enc.train()
    x = images(b=3)
    fmap = enc.forward_features(x)
    logits = cls(enc.pool(fmap))
    looped = grad_cam_from_activations(fmap, logits)  # [B, K, h, w]
    batched = grad_cam_from_activations(fmap, logits, batched=True)
    assert looped.shape == (3, 3, 8, 8)
    for k in range(3):
        torch.testing.assert_close(looped[:, k], grad_cam_from_activations(fmap, logits[:, k]))
    torch.testing.assert_close(batched, looped)


def test_grad_cam_targets_none_uses_argmax_and_returns_logits():
    enc, cls = make_net()
    x = images()
    cam, logits = grad_cam(enc, cls, x, return_logits=True)
    expected = grad_cam(enc, cls, x, targets=logits.argmax(1))
    torch.testing.assert_close(cam, expected)
    up = grad_cam(enc, cls, x, targets=1, upsample_to=(16, 16))
    assert up.shape == (4, 16, 16)


# --- no side effects on the training step ---------------------------------------------------------------------
def _train_step(enc, cls, x, y, with_cam: bool):
    fmap = enc.forward_features(x)
    logits = cls(enc.pool(fmap))
    snapshot = None
    if with_cam:
        bn_before = [b.clone() for n, b in enc.named_buffers()]
        params = list(enc.parameters()) + list(cls.parameters())
        grads_before = [None if p.grad is None else p.grad.clone() for p in params]
        cam = grad_cam_from_activations(fmap, target_scores(logits, y))
        snapshot = (bn_before, grads_before, cam)
    loss = F.cross_entropy(logits, y)
    loss.backward()  # the graph must still be there
    return snapshot


def test_training_step_untouched_by_cam():
    enc, cls = make_net()
    enc2, cls2 = copy.deepcopy(enc), copy.deepcopy(cls)
    for m in (enc, cls, enc2, cls2):
        m.train()
    # gradients already accumulated from an earlier micro-batch must survive
    for p in list(enc.parameters()) + list(cls.parameters()) + list(enc2.parameters()) + list(cls2.parameters()):
        p.grad = torch.full_like(p, 0.25)
    x, y = images(b=6), torch.tensor([0, 1, 2, 0, 1, 2])
    bn_before, grads_before, cam = _train_step(enc, cls, x, y, with_cam=True)
    _train_step(enc2, cls2, x, y, with_cam=False)
    # the CAM call itself changed no BN statistic and no .grad ...
    assert all(torch.equal(g, torch.full_like(g, 0.25)) for g in grads_before)
    for before, (name, after) in zip(bn_before, enc.named_buffers()):
        assert torch.equal(before, after), name
    # ... and the whole step (forward, CAM, backward) equals a step without CAM, bit for bit
    for (n, a), b in zip(list(enc.named_parameters()) + list(cls.named_parameters()),
                         list(enc2.parameters()) + list(cls2.parameters())):
        assert torch.equal(a.grad, b.grad), n
    for (n, a), b in zip(enc.named_buffers(), enc2.buffers()):
        assert torch.equal(a, b), n
    assert enc.training and cls.training and all(m.training for m in enc.modules())
    assert cam.shape == (6, 8, 8) and not cam.requires_grad and cam.min() >= 0


class CountingIdentity(torch.autograd.Function):
    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        CountingIdentity.calls += 1
        return g


def test_backward_stops_at_feature_map():
    """Grad-CAM differentiates the head only: nothing upstream of fmap runs backward."""
    enc, cls = make_net()
    x = images()
    CountingIdentity.calls = 0
    fmap = enc.forward_features(CountingIdentity.apply(x.requires_grad_(True)))
    logits = cls(enc.pool(fmap))
    grad_cam_from_activations(fmap, logits)
    assert CountingIdentity.calls == 0
    logits.sum().backward()
    assert CountingIdentity.calls == 1  # the counter works


def test_grad_cam_convenience_restores_modes_and_leaves_no_grads():
    enc, cls = make_net()
    enc.train()
    enc.body[1].eval()  # a frozen BN inside a training model: its own flag must come back
    buffers = [b.clone() for b in enc.buffers()]
    grad_cam(enc, cls, images(), targets=0)
    assert enc.training and cls.training and not enc.body[1].training and enc.body[4].training
    assert all(p.grad is None for p in list(enc.parameters()) + list(cls.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(buffers, enc.buffers()))


def test_grad_cam_works_with_plain_callables_and_frozen_params():
    enc, cls = make_net()
    for p in list(enc.parameters()) + list(cls.parameters()):
        p.requires_grad_(False)

    class Plain:  # not an nn.Module
        forward_features = staticmethod(enc.eval().forward_features)
        pool = staticmethod(enc.pool)

    cam = grad_cam(Plain(), lambda z: cls(z), images(), targets=1)
    assert cam.shape == (4, 8, 8) and cam.abs().max() > 0


class WithFeatures(Whole):
    """A training model returns the Grad-CAM layer's activations along with the logits (one forward)."""

    def forward(self, x):
        fmap = self.encoder.forward_features(x)
        return fmap, self.classifier(self.encoder.pool(fmap))


@pytest.mark.slow
def test_inside_ddp_training_step(tmp_path):
    """Single-process gloo DDP: a CAM call between forward and backward leaves the update unchanged."""
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this worker")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        enc, cls = make_net()
        ref = copy.deepcopy(WithFeatures(enc, cls))
        model = nn.parallel.DistributedDataParallel(WithFeatures(enc, cls))
        x, y = images(b=6), torch.tensor([0, 1, 2, 0, 1, 2])
        opt, opt_ref = torch.optim.SGD(model.parameters(), 0.1), torch.optim.SGD(ref.parameters(), 0.1)
        for _ in range(3):
            fmap, logits = model(x)
            # DDP's reducer hooks sit on the parameters; the CAM must neither fire them nor free the graph
            cam = grad_cam_from_activations(fmap, target_scores(logits, y))
            opt.zero_grad()
            F.cross_entropy(logits, y).backward()
            opt.step()
            _, logits_ref = ref(x)
            opt_ref.zero_grad()
            F.cross_entropy(logits_ref, y).backward()
            opt_ref.step()
        assert cam.abs().max() > 0
        for a, b in zip(model.module.state_dict().values(), ref.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    finally:
        dist.destroy_process_group()


# --- behaviour on nets whose evidence location is known --------------------------------------------------------
class HalfEncoder(nn.Module):
    """Looks only at one half of the image: the other half of the input is zeroed before a bias-free conv."""

    def __init__(self, side: str):
        super().__init__()
        torch.manual_seed(0)
        self.side = side
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)

    def forward_features(self, x):
        w = x.shape[-1]
        mask = torch.zeros_like(x)
        if self.side == "left":
            mask[..., : w // 2] = 1
        else:
            mask[..., w // 2:] = 1
        return F.relu(self.conv(x * mask))

    def pool(self, fmap):
        return fmap.mean(dim=(2, 3))


@pytest.mark.parametrize("side", ["left", "right"])
def test_cam_concentrates_on_the_half_the_score_depends_on(side):
    enc = HalfEncoder(side)
    cls = nn.Linear(4, 1)
    with torch.no_grad():
        cls.weight.copy_(torch.tensor([[1.0, 0.5, 0.8, 0.3]]))
    x = images(b=3, size=16).abs()
    cam = grad_cam(enc, cls, x, targets=0)
    left, right = cam[..., :7].sum(), cam[..., 9:].sum()  # columns 7, 8 touch the border via the 3x3 kernel
    assert cam.sum() > 0
    inside, outside = (left, right) if side == "left" else (right, left)
    assert outside / (inside + outside) < 0.01


def test_cam_peaks_on_a_bright_blob_for_a_blob_detector():
    conv = nn.Conv2d(1, 1, 5, padding=2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1 / 25)

    class BlobEncoder:
        def forward_features(self, x):
            return F.relu(conv(x) - 0.2)

        def pool(self, fmap):
            return fmap.amax(dim=(2, 3))  # max pooling: evidence at the blob only

    x = torch.zeros(2, 1, 32, 32)
    x[0, :, 4:10, 20:26] = 1.0
    x[1, :, 22:28, 3:9] = 1.0
    cam = grad_cam(BlobEncoder(), lambda z: z * 2.0, x, targets=0)
    for i, (r, c) in enumerate([(7, 23), (25, 6)]):
        peak = divmod(int(cam[i].argmax()), 32)
        assert abs(peak[0] - r) <= 2 and abs(peak[1] - c) <= 2


# --- targets ---------------------------------------------------------------------------------------------------
def test_select_targets_max_logit_positive_rule():
    labels = torch.tensor([[1, 0, 1], [0, 0, 0], [float("nan"), 1, 0], [0, 0, 0]])
    logits = torch.tensor([[0.1, 5.0, 0.7], [0.2, 0.9, -1.0], [9.0, -2.0, 0.0], [3.0, 0.0, 1.0]])
    assert select_targets(labels, logits).tolist() == [2, 1, 1, 0]
    assert select_targets(labels, logits, no_positive="none").tolist() == [2, -1, 1, -1]


def test_target_minus_one_gives_zero_map():
    enc, cls = make_net()
    cam = grad_cam(enc, cls, images(b=2), targets=torch.tensor([-1, 1]))
    assert cam[0].abs().max() == 0 and cam[1].abs().max() > 0


def test_target_scores_shapes():
    logits = torch.arange(12.0).reshape(3, 4)
    assert target_scores(logits, 2).tolist() == [2.0, 6.0, 10.0]
    assert target_scores(logits, [[0, 3], [1, 1], [2, 0]]).tolist() == [[0.0, 3.0], [5.0, 5.0], [10.0, 8.0]]


# --- bad input --------------------------------------------------------------------------------------------------
def test_bad_input_raises_value_error_naming_the_problem():
    enc, cls = make_net()
    x = images()
    fmap = enc.forward_features(x)
    logits = cls(enc.pool(fmap))
    with pytest.raises(ValueError, match=r"fmap must be \[B, C, h, w\]"):
        grad_cam_from_activations(fmap.flatten(2), logits[:, 0])
    with pytest.raises(ValueError, match=r"scores must be \[B\] or \[B, K\].*\(3,\)"):
        grad_cam_from_activations(fmap, logits[:3, 0])
    with pytest.raises(ValueError, match="connected by autograd"):
        grad_cam_from_activations(fmap.detach(), logits[:, 0])
    other = enc.forward_features(x)
    with pytest.raises(ValueError, match="do not depend on fmap"):
        grad_cam_from_activations(other, logits[:, 0])
    with pytest.raises(ValueError, match=r"targets must lie in \[-1, 2\]"):
        target_scores(logits, 3)
    with pytest.raises(ValueError, match="images must be"):
        grad_cam(enc, cls, x[0], targets=0)
    with pytest.raises(ValueError, match="no_positive"):
        select_targets(torch.zeros(2, 3), torch.zeros(2, 3), no_positive="max")


def test_float32_maps_from_a_bfloat16_autocast_forward():
    enc, cls = make_net()
    enc.train()
    x = images()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fmap = enc.forward_features(x)
        logits = cls(enc.pool(fmap))
        cam = grad_cam_from_activations(fmap, logits[:, 0])
    assert fmap.dtype == torch.bfloat16 and cam.dtype == torch.float32
    f32 = fmap.float()
    ref = grad_cam_from_activations(f32, cls(enc.pool(f32))[:, 0])
    torch.testing.assert_close(cam, ref, rtol=0.05, atol=0.05 * float(ref.max()))
