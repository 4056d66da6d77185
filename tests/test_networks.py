"""Image encoders, heads, standardizer and radiomics encoder (radclr.networks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from radclr.errors import ConfigError
from radclr.networks import (ENCODERS, LinearClassifier, ProjectionHead, RadiomicsEncoder, Standardizer,
                             build_image_encoder, load_encoder_weights, simclr_projection_head)

# torchvision parameter counts minus the FC layer, with a 1-channel stem (3 -> 1 input channel removes
# 2 * 64 * 7 * 7 = 6272 parameters): resnet18 11,689,512 - 513,000; resnet34 21,797,672 - 513,000;
# resnet50 25,557,032 - 2,049,000; wide_resnet50_2 68,883,240 - 2,049,000; densenet121 7,978,856 - 1,025,000.
EXPECTED = {
    "resnet18": (512, 11_170_240),
    "resnet34": (512, 21_278_400),
    "resnet50": (2048, 23_501_760),
    "wide_resnet50": (2048, 66_827_968),
    "densenet121": (1024, 6_947_584),
    "resnet18_att": (512, None),
}


@pytest.fixture(scope="module")
def encoders():
    return {name: build_image_encoder(name, seed=0) for name in EXPECTED}


def _x(seed=0, c=1, size=64):
    return torch.randn(2, c, size, size, generator=torch.Generator().manual_seed(seed))


def test_every_registered_encoder_is_tested():
    assert set(ENCODERS) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shapes_and_parameter_count(encoders, name):
    enc = encoders[name].eval()
    out_dim, n_params = EXPECTED[name]
    assert enc.out_dim == out_dim
    x = _x()
    with torch.no_grad():
        fmap = enc.forward_features(x)
        y = enc(x)
    assert fmap.shape == (2, out_dim, 2, 2)  # total stride 32
    assert y.shape == (2, out_dim) and y.dtype == torch.float32
    assert torch.allclose(y, fmap.mean(dim=(2, 3)), atol=1e-6)
    n = sum(p.numel() for p in enc.parameters())
    if n_params is not None:
        assert n == n_params
    else:  # attention branches on top of ResNet-18
        assert EXPECTED["resnet18"][1] < n < 2 * EXPECTED["resnet18"][1]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_feature_layer_hook_sees_forward_features(encoders, name):
    enc = encoders[name].eval()
    seen = {}
    handle = enc.get_submodule(enc.feature_layer).register_forward_hook(lambda m, i, o: seen.update(out=o))
    try:
        with torch.no_grad():
            fmap = enc.forward_features(_x(1))
    finally:
        handle.remove()
    assert torch.equal(seen["out"], fmap)


def test_gradcam_style_gradient_reaches_feature_map(encoders):
    enc = encoders["resnet18"].train()
    fmap = enc.forward_features(_x(2))
    fmap.retain_grad()
    enc.pool(fmap)[:, 0].sum().backward()
    expected = torch.zeros_like(fmap)
    expected[:, 0] = 1.0 / (fmap.shape[2] * fmap.shape[3])  # d mean / d pixel, channel 0 only
    assert torch.equal(fmap.grad, expected)
    enc.zero_grad(set_to_none=True)


def test_seeded_build_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = build_image_encoder("resnet18", seed=7).eval()
    b = build_image_encoder("resnet18", seed=7).eval()
    c = build_image_encoder("resnet18", seed=8).eval()
    assert torch.equal(torch.get_rng_state(), state)
    x = _x(3)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert not torch.allclose(a(x), c(x))


def test_in_channels_and_spatial_dims_options():
    enc = build_image_encoder("resnet18", in_channels=3, seed=0)
    assert enc(_x(c=3)).shape == (2, 512)
    enc3d = build_image_encoder("resnet18", spatial_dims=3, seed=0).eval()
    with torch.no_grad():
        assert enc3d.forward_features(torch.randn(2, 1, 32, 32, 32)).shape == (2, 512, 1, 1, 1)


def test_bad_input_and_bad_names_raise():
    enc = build_image_encoder("resnet18", seed=0)
    with pytest.raises(ValueError, match=r"\(2, 3, 64, 64\)"):
        enc(_x(c=3))
    with pytest.raises(ValueError, match=r"\(1, 64, 64\)"):
        enc(torch.zeros(1, 64, 64))
    with pytest.raises(ConfigError, match="unknown image encoder"):
        build_image_encoder("vgg16")
    with pytest.raises(ConfigError, match="dropout_prob"):
        build_image_encoder("resnet18", dropout_prob=0.1)
    with pytest.raises(ConfigError, match="attention_stages"):
        build_image_encoder("resnet18_att", attention_stages=(4,))


# --- attention variant ----------------------------------------------------------------------------------
def test_attention_maps(encoders):
    enc = build_image_encoder("resnet18_att", seed=0)
    assert enc.attention_maps() == {}
    assert encoders["resnet18"].attention_maps() == {}
    enc.eval()
    with torch.no_grad():
        enc(_x(4))
    maps = enc.attention_maps()
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "layer1": (2, 1, 16, 16), "layer2": (2, 1, 8, 8), "layer3": (2, 1, 4, 4)}
    full = enc.attention_maps(channel_mean=False)
    assert full["layer2"].shape == (2, 128, 8, 8)
    for m in full.values():
        assert not m.requires_grad and float(m.min()) >= 0 and float(m.max()) <= 1 and float(m.std()) > 0


def test_attention_output_is_one_plus_mask_times_trunk():
    """With the mask forced to 0 (sigmoid of a large negative bias), (1 + M) T = T: the plain ResNet-18."""
    att = build_image_encoder("resnet18_att", seed=0).eval()
    plain = build_image_encoder("resnet18", seed=1).eval()
    plain.backbone.load_state_dict(att.backbone.state_dict())
    x = _x(5)
    with torch.no_grad():
        assert not torch.allclose(att(x), plain(x), atol=1e-4)
        for branch in att.attention.values():
            last = branch.head[-2]
            last.weight.zero_()
            last.bias.fill_(-60.0)
        assert torch.allclose(att(x), plain(x), atol=1e-5)
        for branch in att.attention.values():  # M = 1: every attended stage outputs 2 T
            branch.head[-2].bias.fill_(60.0)
        att(x)
        assert torch.allclose(att.attention_maps()["layer1"], torch.ones(2, 1, 16, 16))
        only1 = build_image_encoder("resnet18_att", attention_stages=(1,), seed=0).eval()
        only1.backbone.load_state_dict(att.backbone.state_dict())
        only1.attention["layer1"].head[-2].weight.zero_()
        only1.attention["layer1"].head[-2].bias.fill_(60.0)
        b = plain.backbone
        t1 = 2.0 * b.layer1(plain.stem(x))
        ref = b.layer4(b.layer3(b.layer2(t1)))
        assert torch.allclose(only1.forward_features(x), ref, atol=1e-5)


# --- weights files --------------------------------------------------------------------------------------
def _torchvision_style(sd: dict, prefix="backbone.") -> dict:
    return {k[len(prefix):]: v for k, v in sd.items()}


def test_weights_roundtrip_full_state_dict(tmp_path):
    src = build_image_encoder("resnet18", seed=0).eval()
    path = tmp_path / "enc.pt"
    torch.save(src.state_dict(), path)
    dst = build_image_encoder("resnet18", seed=1, weights=str(path)).eval()
    x = _x(6)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_weights_torchvision_naming_with_rgb_stem_and_fc(tmp_path):
    src = build_image_encoder("resnet18", in_channels=3, seed=0)
    sd = _torchvision_style(src.state_dict())
    sd["fc.weight"] = torch.zeros(1000, 512)
    sd["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "imagenet_like.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    dst = build_image_encoder("resnet18", seed=1)
    report = load_encoder_weights(dst, path)
    assert torch.allclose(dst.backbone.conv1.weight, sd["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(dst.backbone.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])
    assert report["kept_initialisation"] == []


def test_weights_densenet_torchvision_names(tmp_path):
    src = build_image_encoder("densenet121", seed=0)
    sd = {}
    for k, v in _torchvision_style(src.state_dict()).items():
        sd[k.replace(".layers.", ".")] = v  # torchvision: features.denseblock1.denselayer1.norm1.weight
    sd["classifier.weight"], sd["classifier.bias"] = torch.zeros(1000, 1024), torch.zeros(1000)
    assert any("denselayer1.norm1" in k for k in sd)
    path = tmp_path / "dn.pt"
    torch.save(sd, path)
    dst = build_image_encoder("densenet121", seed=1, weights=str(path)).eval()
    x = _x(7)
    with torch.no_grad():
        assert torch.equal(src.eval()(x), dst(x))


def test_weights_backbone_only_into_attention_encoder(tmp_path):
    src = build_image_encoder("resnet18", seed=0)
    path = tmp_path / "r18.pt"
    torch.save(_torchvision_style(src.state_dict()), path)
    att = build_image_encoder("resnet18_att", seed=3)
    before = {k: v.clone() for k, v in att.attention.state_dict().items()}
    report = load_encoder_weights(att, path)
    assert torch.equal(att.backbone.layer4[0].conv1.weight, src.backbone.layer4[0].conv1.weight)
    assert all(torch.equal(before[k], v) for k, v in att.attention.state_dict().items())
    assert report["kept_initialisation"] and all(k.startswith("attention.") for k in report["kept_initialisation"])


def test_weights_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_image_encoder("resnet18", weights=str(tmp_path / "nope.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="cannot be read"):
        build_image_encoder("resnet18", weights=str(junk))
    wrong = tmp_path / "r50.pt"
    torch.save(build_image_encoder("resnet50", seed=0).state_dict(), wrong)
    with pytest.raises(ConfigError, match="does not fit encoder 'resnet18'.*(shape mismatches|unexpected)"):
        build_image_encoder("resnet18", weights=str(wrong))
    partial = tmp_path / "partial.pt"
    sd = build_image_encoder("resnet18", seed=0).state_dict()
    del sd["backbone.layer4.1.bn2.weight"]
    torch.save(sd, partial)
    with pytest.raises(ConfigError, match="missing keys.*layer4.1.bn2.weight"):
        build_image_encoder("resnet18", weights=str(partial))
    notdict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], notdict)
    with pytest.raises(ConfigError, match="not a state dict"):
        build_image_encoder("resnet18", weights=str(notdict))


# --- heads ----------------------------------------------------------------------------------------------
def test_projection_head_structure():
    head = ProjectionHead(512, 256, 128)
    kinds = [type(m) for m in head.net]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear]
    assert head(torch.randn(4, 512)).shape == (4, 128)
    assert [type(m) for m in ProjectionHead(8, num_layers=3, batch_norm=True).net] == [
        nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert ProjectionHead(8, None, 4).net[0].out_features == 8  # hidden defaults to in_dim
    assert [type(m) for m in ProjectionHead(8, num_layers=1).net] == [nn.Linear]
    with pytest.raises(ValueError, match=r"\[N, 512\].*\(4, 256\)"):
        head(torch.randn(4, 256))


def test_simclr_projection_head_is_table_I():
    head = simclr_projection_head(2048)
    lin1, bn, relu, lin2 = head.net
    assert (lin1.in_features, lin1.out_features, lin1.bias is not None) == (2048, 2048, True)
    assert isinstance(bn, nn.BatchNorm1d) and bn.num_features == 2048 and isinstance(relu, nn.ReLU)
    assert (lin2.in_features, lin2.out_features, lin2.bias) == (2048, 128, None)
    assert sum(p.numel() for p in head.parameters()) == 2048 * 2048 + 2048 + 2 * 2048 + 2048 * 128


def test_linear_classifier():
    clf = LinearClassifier(512, 8)
    assert clf(torch.randn(3, 512)).shape == (3, 8)
    with pytest.raises(ValueError, match=r"\(3, 511\)"):
        clf(torch.randn(3, 511))


# --- standardizer / radiomics encoder -------------------------------------------------------------------
def _radiomics_table():
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, size=(40, 5))
    X[3, 0] = np.nan
    X[7, 1] = np.inf
    X[:, 2] = 4.2  # constant
    X[:, 3] = np.nan  # never seen
    return X


def test_standardizer_fit_matches_numpy_nan_statistics():
    X = _radiomics_table()
    std = Standardizer(5).fit(X)
    Xf = np.where(np.isfinite(X), X, np.nan)
    np.testing.assert_allclose(std.mean[[0, 1, 4]].numpy(), np.nanmean(Xf[:, [0, 1, 4]], axis=0), rtol=1e-6)
    np.testing.assert_allclose(std.std[[0, 1, 4]].numpy(), np.nanstd(Xf[:, [0, 1, 4]], axis=0), rtol=1e-6)
    assert std.constant.tolist() == [False, False, True, True, False]
    assert std.unseen.tolist() == [False, False, False, True, False]
    assert float(std.std[2]) == pytest.approx(4.2) and float(std.mean[2]) == pytest.approx(4.2)  # scale |mean|
    # a constant feature's new values come out relative to the training value, not in raw units
    assert float(std(torch.tensor([[0.0, 0.0, 8.4, 0.0, 0.0]]))[0, 2]) == pytest.approx(1.0)
    Z = std(torch.as_tensor(X, dtype=torch.float32))
    assert torch.isfinite(Z).all()
    assert float(Z[3, 0]) == 0.0 and float(Z[7, 1]) == 0.0  # missing -> 0 (training mean)
    assert torch.all(Z[:, 2] == 0) and torch.all(Z[:, 3] == 0)
    ok = np.isfinite(X[:, 0])
    assert float(Z[ok, 0].mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(Z[ok, 0].std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)
    # a value at test time for a feature never seen in training still maps to 0
    assert float(std(torch.tensor([[5.0, 5.0, 5.0, 123.0, 5.0]]))[0, 3]) == 0.0


def test_standardizer_errors_and_state_dict():
    std = Standardizer(3)
    with pytest.raises(RuntimeError, match="before fit"):
        std(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[N, 3\].*\(4, 2\)"):
        std.fit(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="no rows"):
        std.fit(np.zeros((0, 3)))
    X = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 7.0]])
    std.fit(X)
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        std(torch.zeros(2, 4))
    fresh = Standardizer(3)
    fresh.load_state_dict(std.state_dict())
    assert bool(fresh.fitted)
    assert torch.equal(fresh(X), std(X))
    assert set(std.state_dict()) == {"mean", "std", "constant", "unseen", "fitted"}


def test_radiomics_encoder(tmp_path):
    enc = RadiomicsEncoder(5, hidden_dims=(16, 16), out_dim=8, dropout=0.1)
    linears = [m for m in enc.mlp if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(5, 16), (16, 16), (16, 8)]
    assert sum(isinstance(m, nn.Dropout) for m in enc.mlp) == 2
    with pytest.raises(RuntimeError, match="before fit"):
        enc(torch.zeros(2, 5))
    X = _radiomics_table()
    enc.fit_standardizer(X).eval()
    out = enc(torch.as_tensor(X, dtype=torch.float32))
    assert out.shape == (40, 8) and torch.isfinite(out).all()
    path = tmp_path / "renc.pt"
    torch.save(enc.state_dict(), path)
    other = RadiomicsEncoder(5, hidden_dims=(16, 16), out_dim=8, dropout=0.1).eval()
    other.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(other(torch.as_tensor(X, dtype=torch.float32)), out)
    assert len([m for m in RadiomicsEncoder(10).mlp if isinstance(m, nn.Linear)]) == 3  # seed 004: three FC


def test_resnet_width_option_scales_channels():
    import torch

    from radclr.errors import ConfigError
    from radclr.networks import build_image_encoder

    enc = build_image_encoder("resnet18", width=0.25, no_max_pool=True)
    fmap = enc.forward_features(torch.zeros(2, 1, 64, 64))
    assert enc.out_dim == 128 and fmap.shape == (2, 128, 4, 4)  # stride 16 without the max-pool
    assert enc(torch.zeros(2, 1, 64, 64)).shape == (2, 128)
    assert build_image_encoder("resnet50", width=0.5).out_dim == 1024
    with pytest.raises(ConfigError, match="width"):
        build_image_encoder("resnet18", width=0)
