"""Partial freezing (seed 004 §3.4: the best fine-tuning left ResNet's last group and the radiomics MLP's last
two FC layers untrained): ``freeze`` entries name parts, sub-modules or FC-layer slices."""

from __future__ import annotations

import pytest
import torch

from radclr.errors import ConfigError
from radclr.methods import MethodContext, method_class
from radclr.methods.freeze import resolve_freeze

MODEL = {"encoder": "resnet18", "encoder_options": {"width": 0.25}, "proj_dim": 8, "proj_hidden": 8,
         "radiomics_hidden": [8, 8], "radiomics_dim": 8}


def _hybrid(freeze, task="multilabel"):
    ctx = MethodContext(findings=["A", "B", "C"], radiomics_names=[f"r{i}" for i in range(6)], model_cfg=MODEL,
                        image_size=32, dataset_size=8, task=task)
    torch.manual_seed(0)
    method = method_class("hybrid")(torch.nn.ModuleDict(), ctx, {"freeze": freeze})
    method.parts["radiomics_encoder"].fit_standardizer(torch.randn(8, 6))
    return method


def test_entries_resolve_to_parts_submodules_and_fc_slices():
    m = _hybrid([])
    whole, mods = resolve_freeze(m.parts, ["image_proj", "encoder.layer4", "radiomics_encoder.linear[-2:]",
                                           "radiomics_encoder.mlp.0", "encoder.backbone.conv1", "absent_part.x"])
    assert whole == {"image_proj"}
    got = [(spec, mod) for spec, mod in mods]
    mlp = m.parts["radiomics_encoder"].mlp
    assert got[0][1] is m.parts["encoder"].backbone.layer4  # 'encoder.layer4' is short for backbone.layer4
    assert [mod for spec, mod in got if spec.endswith("[-2:]")] == [mlp[2], mlp[4]]  # the last two of 3 FC layers
    assert got[-2][1] is mlp[0] and got[-1][1] is m.parts["encoder"].backbone.conv1
    assert [mod for _, mod in resolve_freeze(m.parts, ["radiomics_encoder.linear[0]"])[1]] == [mlp[0]]
    with pytest.raises(ConfigError, match=r"no sub-module 'layer9'.*layer4"):
        resolve_freeze(m.parts, ["encoder.layer9"])
    with pytest.raises(ConfigError, match="out of range for 3 FC"):
        resolve_freeze(m.parts, ["radiomics_encoder.linear[5]"])
    with pytest.raises(ConfigError, match="selects none"):
        resolve_freeze(m.parts, ["radiomics_encoder.linear[3:]"])


def test_frozen_submodules_keep_weights_and_batchnorm_statistics():
    m = _hybrid(["encoder.layer4", "radiomics_encoder.linear[-2:]"], task="multiclass")
    m.prepare_stage()
    m.train()
    layer4 = m.parts["encoder"].backbone.layer4
    mlp = m.parts["radiomics_encoder"].mlp
    assert not layer4.training and m.parts["encoder"].backbone.layer1.training  # frozen BN stays in eval mode
    trainable = {id(p) for p in m.trainable_parameters()}
    assert not any(id(p) in trainable for p in layer4.parameters())
    assert not any(id(p) in trainable for p in list(mlp[2].parameters()) + list(mlp[4].parameters()))
    assert all(id(p) in trainable for p in mlp[0].parameters())
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.5)
    batch = {"image": torch.rand(4, 1, 32, 32), "radiomics": torch.randn(4, 6),
             "label": torch.eye(3)[[0, 1, 2, 0]]}
    for _ in range(2):
        opt.zero_grad()
        m.training_step(batch)["loss"].backward()
        opt.step()
    after = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith("parts.encoder.backbone.layer4.") for k in changed)  # weights and running stats
    assert not any(k.startswith(("parts.radiomics_encoder.mlp.2.", "parts.radiomics_encoder.mlp.4.")) for k in changed)
    assert "parts.encoder.backbone.layer1.0.bn1.running_mean" in changed  # the rest trains
    assert "parts.radiomics_encoder.mlp.0.weight" in changed and "parts.hybrid_classifier.fc.weight" in changed


def test_unknown_submodule_is_refused_before_training():
    m = _hybrid(["encoder.layer5"])
    with pytest.raises(ConfigError, match="layer5"):
        m.prepare_stage()
