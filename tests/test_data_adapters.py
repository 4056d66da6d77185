"""Adapters of the official layouts, on tiny fabricated copies of their real files (torchxrayvision's habit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_factories import make_chexpert, make_covid, make_kermany, make_nih, make_rsna

from radclr.data import NO_FINDING, detect_format, load_dataset
from radclr.data.adapters.chexpert import CHEXPERT_FINDINGS
from radclr.data.adapters.kermany import parse_name
from radclr.data.adapters.nih import NIH_FINDINGS
from radclr.errors import DataError


def _msgs(ds, severity=None):
    return [str(p) for p in ds.problems if severity is None or p.severity == severity]


# --------------------------------------------------------------------------------------------- NIH
def test_nih_labels_patients_metadata(tmp_path):
    root = make_nih(tmp_path / "nih")
    assert detect_format(root) == "nih"
    ds = load_dataset(root)
    assert ds.format == "nih" and ds.findings == NIH_FINDINGS and len(ds) == 5
    assert ds.records["patient_id"].tolist() == ["00000001", "00000001", "00000002", "00000003", "00000004"]
    y = pd.DataFrame(ds.labels, columns=ds.findings)
    assert y.loc[1, "Cardiomegaly"] == 1 and y.loc[1, "Emphysema"] == 1 and y.loc[1].sum() == 2
    assert ds.is_normal().tolist() == [False, False, True, False, False]
    r = ds.records.iloc[3]
    assert (r.age, r.sex, r.view, r.orig_width, r.orig_height) == (74, "F", "AP", 2048, 2500)
    assert r.official_split == "test" and ds.records.iloc[0].official_split == "train_val"
    assert "images_002" in r.path  # found in its images*/ subfolder


def test_nih_boxes_rescaled_to_the_file_read(tmp_path):
    ds = load_dataset(make_nih(tmp_path / "nih", image_size=256))
    boxes = {(b.label): b for b in ds.boxes_for("00000003_000.png")}
    # BBox_List coordinates are in the released 1024 px images; the files here are 256 px -> x 0.25
    inf = boxes["Infiltration"]  # "Infiltrate" in the box file
    assert (inf.x, inf.y, inf.w, inf.h) == (128, 64, 32, 16)
    m = boxes["Mass"]
    assert (m.x, m.y, m.w, m.h) == (25, 50, 75, 25)
    nod = ds.boxes_for("00000004_000.png")[0]  # (1000, 1000, 48, 48) -> (250, 250, 12, 12) -> clipped at 256
    assert (nod.x, nod.y, nod.w, nod.h) == (250, 250, 6, 6)
    assert any("00000004" in m or "BBox_List" in m for m in _msgs(ds, "warning"))
    assert not _msgs(ds, "error")


def test_nih_box_space_original(tmp_path):
    ds = load_dataset(make_nih(tmp_path / "nih", image_size=256), box_space="original")
    m = [b for b in ds.boxes_for("00000003_000.png") if b.label == "Mass"][0]
    # original scan 2048 x 2500 (w x h): sx = 256/2048, sy = 256/2500
    assert m.x == pytest.approx(100 * 256 / 2048) and m.h == pytest.approx(100 * 256 / 2500)
    with pytest.raises(DataError, match="box_space"):
        load_dataset(tmp_path / "nih", box_space="weird")


def test_nih_partial_download_reported(tmp_path):
    ds = load_dataset(make_nih(tmp_path / "nih", with_missing=True))
    assert len(ds) == 5
    assert any("1 listed image(s) have no file" in m and "00000005_000.png" in m for m in _msgs(ds, "warning"))


# --------------------------------------------------------------------------------------------- RSNA
def test_rsna_several_boxes_per_image_and_class_info(tmp_path):
    root = make_rsna(tmp_path / "rsna")
    assert detect_format(root) == "rsna"
    ds = load_dataset(root)
    assert ds.findings == ["Pneumonia"] and ds.image_ids == ["aaa-1", "bbb-2", "ccc-3", "ddd-4"]
    assert ds.labels[:, 0].tolist() == [1, 0, 0, 1]
    assert ds.records["patient_id"].tolist() == ds.image_ids
    assert len(ds.boxes_for("aaa-1")) == 2
    b = sorted(ds.boxes_for("aaa-1"), key=lambda b: b.x)[1]
    assert (b.x, b.y, b.w, b.h) == (600, 140, 180, 300)
    clipped = ds.boxes_for("ddd-4")[0]  # (900, 900, 300, 300) in a 1024 DICOM -> clipped
    assert (clipped.w, clipped.h) == (124, 124)
    assert ds.records["class"].tolist()[2] == "No Lung Opacity / Not Normal"
    assert ds.read(0).spacing == (0.168, 0.168)


# --------------------------------------------------------------------------------------------- CheXpert
def test_chexpert_uncertain_policies(tmp_path):
    root = make_chexpert(tmp_path)
    assert detect_format(root) == "chexpert"
    j_card, j_eff, j_dev = (CHEXPERT_FINDINGS.index(f) for f in ("Cardiomegaly", "Pleural Effusion", "Support Devices"))
    ds = load_dataset(root)
    assert ds.findings == CHEXPERT_FINDINGS and len(ds) == 4
    assert ds.image_ids[0] == "train/patient00001/study1/view1_frontal.jpg"
    assert ds.records["patient_id"].tolist() == ["patient00001", "patient00001", "patient00002", "patient64541"]
    assert ds.records["split"].tolist() == ["train", "train", "train", "valid"]
    assert ds.labels[0, j_card] == 1 and np.isnan(ds.labels[0, j_eff])  # uncertain -> NaN (default)
    assert np.isnan(ds.labels[0, 0])  # blank -> unknown
    # No Finding = 1: blank pathologies become 0, Support Devices keeps its value
    row = ds.labels[2]
    assert row[j_dev] == 1 and np.all(np.delete(row, j_dev) == 0)
    assert load_dataset(root, uncertain="zeros").labels[0, j_eff] == 0
    assert load_dataset(root, uncertain="ones").labels[0, j_eff] == 1
    with pytest.raises(DataError, match="uncertain"):
        load_dataset(root, uncertain="maybe")


def test_chexpert_frontal_only(tmp_path):
    ds = load_dataset(make_chexpert(tmp_path), frontal_only=True)
    assert len(ds) == 3 and all("frontal" in i for i in ds.image_ids)
    assert any("1 non-frontal" in m for m in _msgs(ds, "warning"))


# --------------------------------------------------------------------------------------------- Kermany
def test_kermany_names_patients_and_split(tmp_path):
    root = make_kermany(tmp_path / "chest_xray")
    assert detect_format(root) == "kermany"
    ds = load_dataset(root)
    assert ds.findings == ["Pneumonia", "Bacterial", "Viral"] and len(ds) == 7
    by_id = dict(zip(ds.image_ids, range(len(ds))))
    i = by_id["train/PNEUMONIA/person12_bacteria_46.jpeg"]
    assert ds.labels[i].tolist() == [1, 1, 0] and ds.records.at[i, "patient_id"] == "person12"
    i = by_id["train/PNEUMONIA/person1_virus_6.jpeg"]
    assert ds.labels[i].tolist() == [1, 0, 1]
    i = by_id["train/NORMAL/NORMAL2-IM-0383-0001.jpeg"]
    assert ds.labels[i].tolist() == [0, 0, 0] and ds.records.at[i, "patient_id"] == "NORMAL2-IM-0383"
    assert ds.records.at[by_id["test/NORMAL/IM-0001-0001.jpeg"], "split"] == "test"
    assert ds.label_counts()[NO_FINDING] == 3
    assert parse_name("IM-0115-0001") == ("IM-0115", "normal")
    assert parse_name("person5_weird") == ("person5", None)


def test_kermany_odd_names(tmp_path):
    from data_factories import gradient, write_jpeg

    root = make_kermany(tmp_path / "k")
    write_jpeg(root / "train/PNEUMONIA/person7_unknown_1.jpeg", gradient(8, 8))
    write_jpeg(root / "train/NORMAL/person8_virus_1.jpeg", gradient(8, 8))
    ds = load_dataset(root, format="kermany")
    i = ds.index_of("train/PNEUMONIA/person7_unknown_1.jpeg")
    assert ds.labels[i, 0] == 1 and np.isnan(ds.labels[i, 1:]).all()
    assert any("sub-type unknown" in m for m in _msgs(ds, "warning"))
    assert any("named like a virus case" in m for m in _msgs(ds, "error"))


# --------------------------------------------------------------------------------------------- COVID
def test_covid_xray_views_only_and_hierarchy(tmp_path):
    root = make_covid(tmp_path / "covid")
    assert detect_format(root) == "covid"
    ds = load_dataset(root)
    assert ds.image_ids == ["a.jpg", "b.png", "c.jpeg", "d.png", "g.png"]
    assert ds.findings == ["Bacterial", "COVID-19", "Pneumonia", "Streptococcus", "Viral"]
    y = pd.DataFrame(ds.labels, columns=ds.findings, index=ds.image_ids)
    assert y.loc["a.jpg"].to_dict() == {"Bacterial": 0, "COVID-19": 1, "Pneumonia": 1, "Streptococcus": 0, "Viral": 1}
    assert y.loc["d.png"].sum() == 0 and ds.is_normal()[3]
    assert y.loc["g.png"].isna().all()  # "todo" = unlabelled
    warn = _msgs(ds, "warning")
    assert any("1 non-X-ray row(s) excluded" in m and "CT" in m for m in warn)
    assert any("1 non-frontal X-ray row(s) excluded" in m and "'L'" in m for m in warn)
    assert ds.records["patient_id"].tolist() == ["2", "2", "3", "4", "7"]


def test_detection_prefers_folder_format(tmp_path):
    root = make_nih(tmp_path / "nih")
    pd.DataFrame({"image": ["x.png"], "patient_id": ["p"], "labels": ["Mass"]}).to_csv(root / "labels.csv", index=False)
    assert detect_format(root) == "folder"


def test_chexpert_renamed_release_folder_still_resolves(tmp_path):
    root = make_chexpert(tmp_path)
    renamed = root.rename(root.parent / "my_chexpert")
    ds = load_dataset(renamed)
    assert len(ds) == 4 and all(Path(p).exists() for p in ds.records["path"])
