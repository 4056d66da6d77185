"""Lesions on real normals (`radclr data synth --background`): exact boxes, determinism, patient grouping, refusal
of a background without normals, and the lung-field heuristic. Backgrounds: phantom chests written as a folder
dataset (real data is not needed; one check on ../shared/data runs when it is there)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import shared_dataset
from PIL import Image

from radclr.cli.main import main
from radclr.data.background_lesions import insert_lesions, patient_part, write_background_lesions
from radclr.data.lung_mask import lung_fields
from radclr.data.phantom import make_phantom, write_phantom_dataset
from radclr.errors import DataError


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    """40 phantom chests at 96 px, about 70 % normal, some patients with two images."""
    root = tmp_path_factory.mktemp("bg") / "normals"
    write_phantom_dataset(root, n=40, size=96, seed=5, p_normal=0.7)
    return root


def _read(path):
    return np.asarray(Image.open(path).convert("L"), dtype=np.int16)


def test_boxes_are_exact_and_backgrounds_untouched_outside(background, tmp_path):
    ds = write_background_lesions(tmp_path / "s", background, n=20, seed=0)
    labels = pd.read_csv(tmp_path / "s" / "labels.csv", dtype=str)
    src = pd.read_csv(background / "labels.csv", dtype=str).set_index("image")
    assert (src.loc[labels["background"], "labels"] == "No Finding").all()  # only normals are backgrounds
    n_lesion = 0
    for r in labels.itertuples():
        out, bg = _read(tmp_path / "s" / "images" / r.image), _read(background / "images" / r.background)
        changed = out != bg
        boxes = ds.boxes[ds.boxes["image_id"] == r.image]
        inside = np.zeros_like(changed)
        for b in boxes.itertuples():
            inside[int(b.y): int(b.y + b.h), int(b.x): int(b.x + b.w)] = True
        assert not (changed & ~inside).any(), r.image  # every changed pixel lies inside a box of its image
        if r.labels == "No Finding":
            assert not changed.any() and boxes.empty
        else:
            n_lesion += 1
            assert sorted(boxes["label"]) == sorted(r.labels.split("|"))
            for b in boxes.itertuples():  # each box is tight: every edge row/column holds a changed pixel
                sub = changed[int(b.y): int(b.y + b.h), int(b.x): int(b.x + b.w)]
                assert sub[0].any() and sub[-1].any() and sub[:, 0].any() and sub[:, -1].any()
    assert n_lesion >= 8


def test_insert_lesions_box_is_the_changed_support():
    img, _, _ = make_phantom(128, [], np.random.default_rng(0))
    for kind in ("Mass", "Nodule", "Effusion", "Infiltration"):
        out, boxes, methods = insert_lesions(img, [kind], np.random.default_rng(1), contrast=0.5)
        changed = out != img
        ys, xs = np.nonzero(changed)
        b = boxes[0]
        assert (b.x, b.y, b.w, b.h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        assert np.all(out[changed] >= 0) and len(methods) == 2


def test_contrast_scales_the_lesion():
    img, _, _ = make_phantom(128, [], np.random.default_rng(0))
    lo, _, _ = insert_lesions(img, ["Nodule"], np.random.default_rng(3), contrast=0.3)
    hi, _, _ = insert_lesions(img, ["Nodule"], np.random.default_rng(3), contrast=1.0)
    assert np.abs(hi - img).max() > 2 * np.abs(lo - img).max()


def test_deterministic_for_a_seed(background, tmp_path):
    write_background_lesions(tmp_path / "a", background, n=12, seed=3)
    write_background_lesions(tmp_path / "b", background, n=12, seed=3)
    write_background_lesions(tmp_path / "c", background, n=12, seed=4)
    for f in ("labels.csv", "boxes.csv"):
        assert (tmp_path / "a" / f).read_text() == (tmp_path / "b" / f).read_text()
    a = pd.read_csv(tmp_path / "a" / "labels.csv")
    assert all((_read(tmp_path / "a" / "images" / i) == _read(tmp_path / "b" / "images" / i)).all() for i in a.image)
    assert (tmp_path / "a" / "boxes.csv").read_text() != (tmp_path / "c" / "boxes.csv").read_text()


def test_patient_grouping_and_parts(background, tmp_path):
    ds = write_background_lesions(tmp_path / "s", background, n=25, seed=1)
    labels = pd.read_csv(tmp_path / "s" / "labels.csv", dtype=str)
    src = pd.read_csv(background / "labels.csv", dtype=str).set_index("image")
    assert (labels["patient_id"].to_numpy() == src.loc[labels["background"], "patient_id"].to_numpy()).all()
    assert labels["background"].is_unique  # each background at most once
    # a patient is either a lesion patient or a negative one: no patient has both kinds of image
    kinds = labels.assign(neg=labels["labels"] == "No Finding").groupby("patient_id")["neg"].nunique()
    assert (kinds == 1).all()
    # whole patients: every normal image of a taken patient is taken (except the one cut at n)
    normals = src[src["labels"] == "No Finding"].groupby("patient_id").size()
    taken = labels.groupby("patient_id").size()
    assert (taken.reindex(normals.index).dropna() <= normals.reindex(taken.index)).all()
    assert int((normals.reindex(taken.index) != taken).sum()) <= 1
    # a patient-wise split keeps a patient's images in one split
    from radclr.data import splits as S

    t = S.make_split(ds, val=0.2, test=0.2, seed=0)
    assert (t.groupby("patient_id")["split"].nunique() == 1).all()
    # train and holdout parts never share a patient, whatever the seeds
    tr = write_background_lesions(tmp_path / "tr", background, n=5, seed=7, part="train", holdout=0.4)
    ho = write_background_lesions(tmp_path / "ho", background, n=5, seed=8, part="holdout", holdout=0.4)
    assert not set(tr.patient_ids) & set(ho.patient_ids)
    assert all(patient_part(p, 0.4) == "holdout" for p in ho.patient_ids)


def test_refuses_background_without_normals(tmp_path, capsys):
    root = tmp_path / "sick"
    write_phantom_dataset(root, n=6, size=64, seed=0, p_normal=0.0)
    with pytest.raises(DataError, match="no image labelled 'No Finding'"):
        write_background_lesions(tmp_path / "out", root, n=2)
    assert main(["data", "synth", str(tmp_path / "out2"), "--background", str(root), "--n", "2"]) != 0
    assert "No Finding" in capsys.readouterr().err
    few = tmp_path / "few"
    write_phantom_dataset(few, n=6, size=64, seed=0, p_normal=1.0)
    with pytest.raises(DataError, match="fewer than --n"):
        write_background_lesions(tmp_path / "o3", few, n=50)


def test_cli_synth_background(background, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "synth", str(out), "--background", str(background), "--n", "10", "--seed", "2",
                 "--contrast", "0.5", "--size", "64"]) == 0
    assert "with lesions inserted into normals" in capsys.readouterr().out
    meta = json.loads((out / "synth.json").read_text())
    assert meta["contrast"] == 0.5 and meta["n"] == 10 and meta["size"] == 64
    assert Image.open(next((out / "images").iterdir())).size == (64, 64)
    assert main(["data", "synth", str(out), "--background", str(background), "--n", "10"]) != 0  # exists: --force
    assert main(["data", "synth", str(tmp_path / "x"), "--background", str(background), "--n", "3",
                 "--contrast", "0"]) != 0


def test_lung_fields_on_a_phantom_chest():
    img, _, _ = make_phantom(128, [], np.random.default_rng(2))
    lungs = lung_fields(img)
    assert [lung.side for lung in lungs] == ["right", "left"]
    assert all(lung.method == "intensity" for lung in lungs)
    right, left = lungs
    assert np.nonzero(right.mask)[1].mean() < 64 < np.nonzero(left.mask)[1].mean()
    flat = lung_fields(np.full((64, 64), 100.0))  # nothing to find: the geometric prior
    assert [lung.method for lung in flat] == ["prior", "prior"]


def test_on_nih_normals_when_present(tmp_path):
    nih = shared_dataset("nih_cxr14")
    ds = write_background_lesions(tmp_path / "nih", nih, n=12, seed=0, size=192)
    meta = json.loads((tmp_path / "nih" / "synth.json").read_text())
    assert len(ds) == 12 and meta["lung_mask_methods"].get("intensity", 0) >= meta["lung_mask_methods"].get("prior", 0)
