"""Patient-wise splits, k-fold and nested label fractions (no patient in two parts, ever)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_dataset

from radclr.data import CXRDataset, load_dataset
from radclr.data import splits as S
from radclr.errors import SplitError

FINDINGS = ["A", "B", "C", "D"]
PREVALENCE = [0.3, 0.15, 0.06, 0.02]


def synthetic(n_patients: int = 400, seed: int = 0, with_boxes: bool = False) -> CXRDataset:
    """An in-memory dataset (no files: splits never read images); 1-4 images per patient, correlated labels."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for p in range(n_patients):
        base = rng.random(len(FINDINGS)) < PREVALENCE
        for k in range(int(rng.integers(1, 5))):
            y = base | (rng.random(len(FINDINGS)) < 0.02)
            rows.append((f"img{p:04d}_{k}", f"/nowhere/img{p:04d}_{k}.png", f"P{p:04d}"))
            labels.append(y.astype(np.float32))
    records = pd.DataFrame(rows, columns=["image_id", "path", "patient_id"])
    y = np.stack(labels)
    y[rng.random(len(y)) < 0.03, 0] = np.nan  # some unknown labels
    boxes = None
    if with_boxes:
        boxed = records.iloc[::7]
        boxes = pd.DataFrame({"image_id": boxed["image_id"], "label": "A", "x": 1.0, "y": 1.0, "w": 5.0, "h": 5.0})
    return CXRDataset("synthetic", "folder", "/nowhere", FINDINGS, records, y, boxes)


def _patients_of(table, part):
    return set(table.loc[table["split"] == part, "patient_id"])


def test_split_is_patient_wise_sized_and_stratified():
    ds = synthetic()
    t = S.split_patients(ds, val=0.1, test=0.2, seed=3)
    assert t["image_id"].tolist() == ds.image_ids  # aligned with the dataset
    parts = [_patients_of(t, p) for p in S.PARTS]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    frac = t["split"].value_counts(normalize=True)
    assert frac["train"] == pytest.approx(0.7, abs=0.03)
    assert frac["val"] == pytest.approx(0.1, abs=0.03) and frac["test"] == pytest.approx(0.2, abs=0.03)
    # stratified: each part's positives per finding are close to its share of the images
    for j, f in enumerate(FINDINGS):
        total = np.nansum(ds.labels[:, j] == 1)
        for part, share in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
            got = np.nansum(ds.labels[(t["split"] == part).to_numpy(), j] == 1)
            assert abs(got - share * total) <= max(3, 0.12 * share * total), (f, part, got, share * total)


def test_split_seeded():
    ds = synthetic()
    a = S.split_patients(ds, seed=1)
    assert a.equals(S.split_patients(ds, seed=1))
    assert not a["split"].equals(S.split_patients(ds, seed=2)["split"])


def test_split_fraction_checks_and_tiny_dataset():
    ds = synthetic(4)
    t = S.split_patients(ds, val=0.1, test=0.2, seed=0)
    assert set(t["split"]) == {"train", "val", "test"}  # every requested part gets a patient
    with pytest.raises(SplitError, match="sum must be < 1"):
        S.split_patients(ds, val=0.5, test=0.5)
    with pytest.raises(SplitError, match="in \\[0, 1\\)"):
        S.split_patients(ds, val=-0.1)
    with pytest.raises(SplitError, match="protocol"):
        S.split_patients(ds, protocol="nope")


def test_byop_protocol_annotated_patients_train_test_only():
    ds = synthetic(300, with_boxes=True)
    t = S.split_patients(ds, val=0.1, test=0.2, seed=0, protocol="byop")
    boxed = set(ds.records.loc[ds.has_boxes(), "patient_id"])
    annotated = t[t["patient_id"].isin(boxed)]
    assert set(annotated["split"]) == {"train", "test"}
    assert (annotated["split"] == "train").mean() == pytest.approx(0.2, abs=0.06)
    assert set(t.loc[~t["patient_id"].isin(boxed), "split"]) == {"train", "val", "test"}


def test_kfold_patient_wise_covers_everything():
    ds = synthetic()
    t = S.kfold_patients(ds, k=5, seed=0)
    assert set(t["fold"]) == {0, 1, 2, 3, 4} and set(t["split"]) == {"train"}
    assert (t.groupby("patient_id")["fold"].nunique() == 1).all()
    sizes = t["fold"].value_counts(normalize=True)
    assert np.allclose(sizes, 0.2, atol=0.03)
    held = S.kfold_patients(ds, k=3, seed=0, test=0.25)
    assert (held.loc[held["split"] == "test", "fold"] == -1).all()
    assert (held["split"] == "test").mean() == pytest.approx(0.25, abs=0.03)
    fold, pid = held["fold"].to_numpy(), held["patient_id"].to_numpy()
    assert not set(pid[(fold >= 0) & (fold != 1)]) & set(pid[fold == 1])  # round 1: train and val patients apart
    with pytest.raises(SplitError, match="k >= 2"):
        S.kfold_patients(ds, k=1)


def test_label_fractions_nested_whole_patients_train_only():
    ds = synthetic()
    t = S.split_patients(ds, seed=0)
    train = (t["split"] == "train").to_numpy()
    sets = []
    for f in (0.05, 0.1, 0.2, 0.5):
        lf = S.apply_label_fraction(ds, t, f, seed=0)
        assert lf.loc[~train, "labeled"].all()  # val/test keep their labels
        lab = lf.loc[train, "labeled"].to_numpy()
        assert lab.mean() == pytest.approx(f, abs=0.02)
        assert (lf[train].groupby("patient_id")["labeled"].nunique() == 1).all()  # whole patients
        sets.append(set(lf.loc[train & lf["labeled"].to_numpy(), "image_id"]))
    assert sets[0] < sets[1] < sets[2] < sets[3]  # nested
    # stratified: the 20 % labelled part has ~20 % of the training positives of the common findings
    lf = S.apply_label_fraction(ds, t, 0.2, seed=0)
    m = train & lf["labeled"].to_numpy()
    for j in (0, 1):
        share = np.nansum(ds.labels[m, j] == 1) / np.nansum(ds.labels[train, j] == 1)
        assert share == pytest.approx(0.2, abs=0.06)
    other = S.apply_label_fraction(ds, t, 0.2, seed=1)
    assert not other["labeled"].equals(lf["labeled"])
    with pytest.raises(SplitError, match="label fraction"):
        S.apply_label_fraction(ds, t, 0.0)


@pytest.mark.parametrize("fraction", [10, 1.5, 0, -0.1])
def test_make_split_refuses_label_fractions_outside_0_1(fraction):
    with pytest.raises(SplitError, match=r"label fraction must be in \(0, 1\]"):
        S.make_split(synthetic(20), label_fraction=fraction)


def test_save_load_round_trip_and_refusals(tmp_path):
    ds = synthetic(60)
    t = S.make_split(ds, folds=3, test=0.2, label_fraction=0.5, seed=0)
    path = S.save_split(t, tmp_path / "split.csv")
    assert pd.read_csv(path).columns.tolist() == ["image_id", "patient_id", "split", "fold", "labeled"]
    back = S.load_split(path)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), t[back.columns].reset_index(drop=True),
                                  check_dtype=False)
    # a patient in two parts is refused, naming the patient
    bad = t.copy()
    first_patient = bad.loc[bad.duplicated("patient_id", keep=False), "patient_id"].iloc[0]
    rows = bad.index[bad["patient_id"] == first_patient]
    bad.loc[rows[0], "split"], bad.loc[rows[1], "split"] = "train", "test"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SplitError, match=f"patient '{first_patient}' in \\['test', 'train'\\]"):
        S.load_split(tmp_path / "bad.csv")
    with pytest.raises(SplitError, match="patient"):
        S.save_split(bad, tmp_path / "never.csv")
    t2 = t.copy()
    t2.loc[rows[0], "fold"] = (t2.loc[rows[1], "fold"] + 1) % 3
    with pytest.raises(SplitError, match="two fold parts"):
        S.check_patient_disjoint(t2)
    pd.DataFrame({"image_id": ["a"], "patient_id": ["p"], "split": ["training"]}).to_csv(tmp_path / "v.csv", index=False)
    with pytest.raises(SplitError, match="line 2 has 'training'"):
        S.load_split(tmp_path / "v.csv")
    pd.DataFrame({"image_id": ["a"], "part": ["train"]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(SplitError, match=r"missing required column\(s\) \['patient_id', 'split'\]"):
        S.load_split(tmp_path / "c.csv")


def test_a_split_table_must_cover_the_dataset():
    ds = synthetic(80)
    t = S.apply_label_fraction(ds, S.split_patients(ds, seed=0), 0.3, seed=0)
    with pytest.raises(SplitError, match="lacks"):
        S.align_split(ds, t.iloc[1:])


def test_iterative_stratification_shapes():
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(4,\)"):
        S.iterative_stratification(np.zeros((3, 2)), np.ones(4), [0.5, 0.5], np.random.default_rng(0))


@pytest.mark.realdata
def test_nih_cxr14_split_has_no_patient_in_two_parts():
    ds = load_dataset(shared_dataset("nih_cxr14"))
    t = S.make_split(ds, val=0.1, test=0.2, label_fraction=0.1, seed=0)
    S.check_patient_disjoint(t)
    owners = t.groupby("patient_id")["split"].nunique()
    assert (owners == 1).all() and len(owners) == ds.records["patient_id"].nunique()
    assert (t["split"] == "test").mean() == pytest.approx(0.2, abs=0.03)


def test_dataset_refuses_a_transposed_label_matrix():
    ds = synthetic(5)
    n, f = ds.labels.shape
    assert n != f
    with pytest.raises(Exception, match=r"must be \[images, findings\]"):
        CXRDataset("t", "folder", "/nowhere", ds.findings, ds.records, ds.labels.T.copy(), None)
