"""Disease hierarchy and hard-negative masks (radclr.data.hierarchy; seed 001 §3.1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radclr.data.hierarchy import (DiseaseHierarchy, default_hierarchy, hard_negative_mask,
                                   normalise_name)
from radclr.errors import ConfigError, DataError

NIH14 = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
         "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
CHEXPERT = ["Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
            "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
            "Support Devices"]
nan = np.nan


def test_shipped_hierarchy_covers_the_datasets():
    h = default_hierarchy()
    for name in NIH14 + CHEXPERT + ["Bacterial", "Viral", "Lung Opacity", "COVID-19", "Infiltrate"]:
        assert h.body_part(name) in h.body_parts
    assert h.is_normal_name("No Finding") and h.is_normal_name("normal")
    expected = {"Pneumonia": "lung", "Atelectasis": "lung", "Mass": "lung", "Nodule": "lung", "Effusion": "pleura",
                "Pleural Thickening": "pleura", "Pneumothorax": "pleura", "Cardiomegaly": "heart",
                "Fracture": "bone", "Hernia": "diaphragm", "Pleural Effusion": "pleura", "Bacterial": "lung"}
    assert {k: h.body_part(k) for k in expected} == expected
    assert h.canonical("pleural-thickening") == "Pleural_Thickening" == h.canonical("PLEURAL THICKENING")
    assert h.canonical("Infiltrate") == "Infiltration"
    assert h.ancestors("COVID-19") == ["Viral", "Pneumonia"]
    assert h.related("Pneumonia", "Bacterial") and not h.related("Bacterial", "Viral")
    assert normalise_name("  Pleural__Thickening ") == "pleural thickening"


def test_paper_example_pneumonia_anchor():
    # seed 001 §3.1: anchor Pneumonia/Lung -> Atelectasis/Lung, Edema/Lung, Normal; not Bone Fractures
    findings = ["Pneumonia", "Atelectasis", "Edema", "Fracture", "Effusion"]
    y = np.array([[1, 0, 0, 0, 0],   # 0 anchor: pneumonia
                  [0, 1, 0, 0, 0],   # 1 atelectasis
                  [0, 0, 1, 0, 0],   # 2 edema
                  [0, 0, 0, 0, 0],   # 3 normal
                  [0, 0, 0, 1, 0],   # 4 fracture
                  [0, 0, 0, 0, 1],   # 5 effusion (pleura)
                  [1, 1, 0, 0, 0]],  # 6 pneumonia + atelectasis: shares the anchor's disease
                 dtype=np.float32)
    mask = hard_negative_mask(y, findings)
    assert mask.dtype == bool and mask.shape == (7, 7)
    assert np.flatnonzero(mask[0]).tolist() == [1, 2, 3]
    assert np.flatnonzero(mask[4]).tolist() == [3]  # fracture: only bone diseases or normal
    assert np.flatnonzero(mask[5]).tolist() == [3]
    assert not mask[3].any()  # a normal image is no anchor
    assert np.flatnonzero(mask[6]).tolist() == [2, 3]  # union over lung, minus images with pneumonia/atelectasis
    assert not mask.diagonal().any()


def test_normal_means_no_finding_at_all_when_flagged(tmp_path):
    """Seed 001 §3.1's "normal chest X-rays": with the run studying [Mass, Nodule], an NIH image with only
    Cardiomegaly/Emphysema has every studied finding 0 -- normal under no_studied_finding, not under no_finding
    (the dataset's own "No Finding", recorded before data.findings restricts the labels)."""
    from data_factories import make_nih
    from radclr.methods.byop import BYOPOptions
    from radclr.training_data import open_dataset

    cfg = {"path": str(make_nih(tmp_path / "nih", image_size=64)), "findings": ["Mass", "Nodule"], "format": None,
           "box_fraction": 1.0, "split": {"seed": 0}}
    ds = open_dataset(cfg)
    assert ds.findings == ["Mass", "Nodule"]
    assert ds.is_normal().tolist() == [True, True, True, False, False]  # all studied findings 0
    assert ds.records["no_finding"].tolist() == [False, False, True, False, False]  # only "No Finding"
    anchor = ds.labels[4]  # Nodule
    y = np.vstack([ds.labels, anchor])
    flag = np.append(ds.records["no_finding"].to_numpy(), False)
    studied = hard_negative_mask(y, ds.findings)
    paper = hard_negative_mask(y, ds.findings, normal=flag)
    assert np.flatnonzero(studied[5]).tolist() == [0, 1, 2, 3]  # Cardiomegaly images count as normal; Mass (lung)
    assert np.flatnonzero(paper[5]).tolist() == [2, 3]  # the "No Finding" image and the Mass image
    assert torch.equal(hard_negative_mask(torch.tensor(y), ds.findings, normal=torch.tensor(flag)),
                       torch.tensor(paper))
    assert BYOPOptions().negatives_normal == "no_finding"
    assert BYOPOptions.from_config({"negatives_normal": "no_studied_finding"}).negatives_normal == "no_studied_finding"
    with pytest.raises(ConfigError, match="negatives_normal"):
        BYOPOptions.from_config({"negatives_normal": "normal"}, "byop")
    with pytest.raises(ValueError, match="normal must be"):
        hard_negative_mask(y, ds.findings, normal=flag[:3])
    # the flag reaches BYOP's batches; an unlabelled image (label fraction) is never normal
    from radclr.engine.config import resolve_config
    from radclr.training_data import TrainingView, prepare_data

    run_cfg = resolve_config(base={"data": {**cfg, "image_size": 32, "cache_dir": str(tmp_path / "cache"),
                                            "split": {"val": 0.0, "test": 0.0, "seed": 0}}})
    data = prepare_data(run_cfg, None, need_radiomics=False, progress=False)
    labels = data.dataset.labels.copy()
    labels[2] = np.nan
    view = TrainingView(data, labels)
    assert [bool(view[i]["no_finding"]) for i in range(5)] == [False, False, False, False, False]
    assert bool(TrainingView(data, data.dataset.labels)[2]["no_finding"])


def test_multi_label_anchor_union_of_body_parts():
    findings = ["Pneumonia", "Effusion", "Atelectasis", "Pneumothorax", "Cardiomegaly"]
    y = np.array([[1, 1, 0, 0, 0],   # anchor: lung + pleura
                  [0, 0, 1, 0, 0],   # lung, other disease -> negative
                  [0, 0, 0, 1, 0],   # pleura, other disease -> negative
                  [0, 1, 0, 1, 0],   # shares effusion -> not
                  [0, 0, 0, 0, 1],   # heart -> not
                  [0, 0, 0, 0, 0]])  # normal -> negative
    assert np.flatnonzero(hard_negative_mask(y, findings)[0]).tolist() == [1, 2, 5]


def test_unknown_labels_are_not_evidence():
    findings = ["Pneumonia", "Atelectasis", "Edema"]
    y = np.array([[1, 0, 0],
                  [nan, 1, 0],     # atelectasis, pneumonia unknown -> could share the disease -> not a negative
                  [0, 0, nan],     # no positive but not all known: not "normal" -> not a negative
                  [0, 1, nan],     # atelectasis, pneumonia known absent -> negative
                  [nan, nan, nan],
                  [0, 0, 0]])
    mask = hard_negative_mask(y, findings)
    assert np.flatnonzero(mask[0]).tolist() == [3, 5]
    assert not mask[4].any() and not mask[2].any()  # no known positive: no anchor


def test_kermany_subtypes():
    findings = ["Pneumonia", "Bacterial", "Viral"]
    y = np.array([[1, 1, 0],   # bacterial
                  [1, 0, 1],   # viral
                  [0, 0, 0],   # normal
                  [1, 1, 0],   # bacterial
                  [1, 0, 0]])  # pneumonia of unknown type
    mask = hard_negative_mask(y, findings)
    assert np.flatnonzero(mask[0]).tolist() == [1, 2]
    assert np.flatnonzero(mask[1]).tolist() == [0, 2, 3]
    assert np.flatnonzero(mask[4]).tolist() == [2]  # parent-only anchor: every sub-type is related


def test_torch_in_torch_out():
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    mask = hard_negative_mask(y, ["Mass", "Nodule"])
    assert mask.dtype == torch.bool and mask.device == y.device
    assert mask.tolist() == [[False, True, True], [True, False, True], [False, False, False]]


def _reference_mask(y, findings, h):
    """Plain-Python version of the documented rule."""
    canon = [h.canonical(f) for f in findings]
    n = len(y)

    def specific(row):
        pos = {canon[j] for j, v in enumerate(row) if v == 1}
        return {d for d in pos if not any(d in h.ancestors(o) for o in pos)}

    spec = [specific(r) for r in y]
    out = np.zeros((n, n), dtype=bool)
    for a in range(n):
        if not spec[a]:
            continue
        parts = {h.body_part(d) for d in spec[a]}
        for k in range(n):
            if k == a:
                continue
            normal = all(v == 0 for v in y[k])
            same = any(h.body_part(d) in parts for d in spec[k])
            shares = any(h.related(d, e) for d in spec[a] for e in spec[k])
            hidden = any(y[k][canon.index(d)] != 0 for d in spec[a])
            out[a, k] = (normal or same) and not shares and not hidden
    return out


def test_matches_reference_on_random_labels():
    rng = np.random.default_rng(0)
    findings = NIH14 + ["Bacterial", "Viral"]
    y = (rng.random((40, len(findings))) < 0.12).astype(np.float64)
    y[rng.random(y.shape) < 0.05] = nan
    y[:8] = 0  # some normals
    h = default_hierarchy()
    got = hard_negative_mask(y, findings, h)
    assert got.any() and (got != _reference_mask(y.tolist(), findings, h)).sum() == 0


def test_mask_feeds_the_cross_modal_loss():
    from radclr.losses import CrossModalNTXentLoss

    y = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.float32)
    findings = ["Pneumonia", "Atelectasis", "Cardiomegaly"]
    z_img = torch.randn(5, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    z_rad = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    crit = CrossModalNTXentLoss(0.1)
    losses, used = crit.per_anchor(z_img, z_rad, hard_negative_mask(y, findings), (y == 1).any(dim=1))
    assert used.tolist() == [True, True, False, True, True]
    loss = crit(z_img, z_rad, hard_negative_mask(y, findings), (y == 1).any(dim=1))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z_img.grad).all()


def test_bad_input():
    y = np.zeros((2, 2))
    with pytest.raises(DataError, match="'Bone Marrow Edema' is not in the disease hierarchy"):
        hard_negative_mask(y, ["Mass", "Bone Marrow Edema"])
    other = hard_negative_mask(np.array([[0, 1], [0, 0], [1, 0]], dtype=float), ["Mass", "Weird Thing"],
                               unknown="other")
    assert np.flatnonzero(other[0]).tolist() == [1]  # an unknown finding has its own body part: only normals
    with pytest.raises(DataError, match="normal"):
        hard_negative_mask(y, ["Mass", "No Finding"])
    with pytest.raises(DataError, match="same disease more than once"):
        hard_negative_mask(y, ["Effusion", "Pleural Effusion"])
    with pytest.raises(ValueError, match=r"\[N, F\] with F = len\(findings\) = 3, got shape \(2, 2\)"):
        hard_negative_mask(y, ["Mass", "Nodule", "Edema"])
    with pytest.raises(ValueError, match="0, 1 or NaN"):
        hard_negative_mask(np.array([[0.5, 0.0]]), ["Mass", "Nodule"])


def test_hierarchy_file_validation(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        DiseaseHierarchy.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("body_parts: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        DiseaseHierarchy.load(bad)
    with pytest.raises(ConfigError, match="body_parts"):
        DiseaseHierarchy.from_dict({"normal": ["No Finding"]})
    with pytest.raises(ConfigError, match=r"body_parts.lung.diseases must be"):
        DiseaseHierarchy.from_dict({"body_parts": {"lung": {"diseases": []}}})
    with pytest.raises(ConfigError, match="used for both"):
        effusion = {"name": "Effusion", "aliases": ["mass"]}
        DiseaseHierarchy.from_dict({"body_parts": {"lung": {"diseases": ["Mass"]},
                                                   "pleura": {"diseases": [effusion]}}})
    with pytest.raises(ConfigError, match="parent 'Pneumonia'"):
        DiseaseHierarchy.from_dict({"body_parts": {"lung": {"diseases": [{"name": "Viral", "parent": "Pneumonia"}]}}})
    with pytest.raises(ConfigError, match="must be in the body part of its parent"):
        DiseaseHierarchy.from_dict({"body_parts": {"lung": {"diseases": ["Pneumonia"]},
                                                   "pleura": {"diseases": [{"name": "Viral", "parent": "Pneumonia"}]}}})
    with pytest.raises(ConfigError, match="unknown key"):
        DiseaseHierarchy.from_dict({"body_parts": {"lung": {"diseases": [{"name": "Mass", "part": "x"}]}}})
    good = tmp_path / "mine.yaml"
    good.write_text("normal: [Normal]\nbody_parts:\n  lung: {diseases: [Mass, Nodule]}\n"
                    "  heart: {diseases: [Big Heart]}\n")
    h = DiseaseHierarchy.load(good)
    y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    assert hard_negative_mask(y, ["Mass", "Nodule", "Big Heart"], h).astype(int).tolist() == [
        [0, 1, 0], [1, 0, 0], [0, 0, 0]]
