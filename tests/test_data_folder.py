"""The radclr folder format: loading, label/box/path policies, and every bad-input case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_factories import gradient, make_folder, small_folder, write_png

from radclr.data import NO_FINDING, load_dataset
from radclr.data.adapters import folder
from radclr.errors import ConfigError, DataError


def _msgs(ds, severity=None):
    return [str(p) for p in ds.problems if severity is None or p.severity == severity]


def test_load_small_folder(tmp_path):
    ds = load_dataset(small_folder(tmp_path / "ds"))
    assert ds.format == "folder" and len(ds) == 6
    assert ds.findings == ["Mass", "Nodule"]  # sorted, no "No Finding"
    np.testing.assert_array_equal(ds.labels[:5], [[1, 0], [0, 0], [1, 1], [0, 1], [0, 0]])
    assert np.isnan(ds.labels[5]).all()  # blank labels = unlabelled
    assert ds.label_counts() == {"Mass": 2, "Nodule": 2, NO_FINDING: 2}
    assert ds.records["patient_id"].tolist() == ["p1", "p1", "p2", "p3", "p4", "p4"]
    assert list(ds.records.columns[:3]) == ["image_id", "path", "patient_id"]
    assert ds.records["width"].dtype.kind in "if"  # metadata parsed as numbers
    assert len(ds.boxes) == 3 and ds.problems == []
    b = ds.boxes_for("a.png")[0]
    assert (b.x, b.y, b.w, b.h, b.label) == (10, 12, 20, 15, "Mass")
    assert ds.read(0).shape == (64, 64)


def test_declared_findings_and_unknown_label_policy(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass|Nodle"), ("b.png", "p2", "Nodule")])
    ds = load_dataset(root, findings=["Mass", "Nodule", "Effusion"])
    assert ds.findings == ["Mass", "Nodule", "Effusion"]
    # the unknown label is reported (name, count, line) and ignored; the image keeps its known labels
    err = _msgs(ds, "error")
    assert len(err) == 1 and "unknown label 'Nodle'" in err[0] and "labels.csv:2" in err[0]
    np.testing.assert_array_equal(ds.labels, [[1, 0, 0], [0, 1, 0]])
    # findings.txt declares the list the same way
    (root / "findings.txt").write_text("# phantom findings\nMass\nNodule\n")
    ds = load_dataset(root)
    assert ds.findings == ["Mass", "Nodule"] and any("Nodle" in m for m in _msgs(ds, "error"))
    with pytest.raises(DataError, match="No Finding"):
        load_dataset(root, findings=["Mass", NO_FINDING])


def test_near_typos_warned_without_declared_findings(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Nodle"), ("b.png", "p2", "Nodule"), ("c.png", "p3", "Nodule")])
    ds = load_dataset(root)
    assert ds.findings == ["Nodle", "Nodule"]
    (w,) = _msgs(ds, "warning")
    assert "'Nodle' (1 image(s)) and 'Nodule' (2 image(s)) are spelled almost alike" in w


def test_label_spelling_variants_and_no_finding_mixed(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Pleural_Thickening"), ("b.png", "p2", "pleural thickening"),
                                         ("c.png", "p3", "No Finding|Mass")])
    ds = load_dataset(root)
    err = _msgs(ds, "error")
    # issue 20: spellings that differ only in case/separators are one finding (said as a warning)
    assert any("'Pleural_Thickening' (1 image(s)), 'pleural thickening' (1 image(s)) differ only in case" in m
               and "read as one finding 'Pleural_Thickening'" in m for m in _msgs(ds, "warning"))
    assert ds.findings == ["Mass", "Pleural_Thickening"] and ds.labels[:2, 1].tolist() == [1, 1]
    assert any("labels.csv:4" in m and "'No Finding' listed together" in m for m in err)
    assert ds.labels[2, ds.findings.index("Mass")] == 1


def test_missing_required_columns_names_them_and_the_file(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    pd.DataFrame({"image": ["a.png"], "label": ["Mass"]}).to_csv(root / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"labels.csv: missing required column\(s\) \['patient_id', 'labels'\]"):
        load_dataset(root)
    make_folder(root, [("a.png", "p1", "Mass")])
    pd.DataFrame({"image": ["a.png"], "x": [1]}).to_csv(root / "boxes.csv", index=False)
    with pytest.raises(DataError, match=r"boxes.csv: missing required column\(s\) \['label', 'y', 'w', 'h'\]"):
        load_dataset(root)


def test_duplicate_image_ids_raise_with_lines(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass"), ("b.png", "p2", ""), ("a.png", "p3", "Nodule")])
    with pytest.raises(DataError, match=r"duplicate image id\(s\): 'a.png' \(lines 2, 4\)"):
        load_dataset(root)


def test_one_file_written_two_ways_is_a_duplicate(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass"), ("b.png", "p2", "")])
    (root / "labels.csv").write_text((root / "labels.csv").read_text() + "./a.png,p3,Nodule\n")
    with pytest.raises(DataError, match=r"duplicate image id\(s\): 'a.png'"):
        load_dataset(root)


def test_paths_escaping_the_root_are_refused(tmp_path):
    outside = write_png(tmp_path / "outside.png", gradient(8, 8))
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass"), ("../../outside.png", "p2", "Mass"),
                                         (str(outside), "p3", "Mass"), ("sub/../../x.png", "p4", "")])
    ds = load_dataset(root)
    assert ds.image_ids == ["a.png"]  # the three others are refused, each with an error naming its line
    err = _msgs(ds, "error")
    assert sum("escapes the dataset root" in m for m in err) == 2
    assert sum("absolute image path" in m for m in err) == 1
    assert all(str(outside) not in p for p in ds.records["path"])


def test_missing_and_unlisted_image_files(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass"), ("b.png", "p2", "Nodule")])
    (root / "images" / "b.png").unlink()
    write_png(root / "images" / "extra.png", gradient(8, 8))
    ds = load_dataset(root)
    assert ds.image_ids == ["a.png"]
    assert any("b.png: image file missing" in m and m.startswith("error") for m in _msgs(ds))
    assert any("not listed in labels.csv" in m and "extra.png" in m for m in _msgs(ds, "warning"))
    assert ds.findings == ["Mass", "Nodule"]  # the finding list still comes from the whole table


def test_box_policies(tmp_path):
    rows = [("a.png", "p1", "Mass"), ("b.png", "p2", "Mass|Nodule")]
    boxes = [
        ("a.png", "Mass", 10, 10, 20, 20),   # fine
        ("a.png", "Mass", 50, 50, 30, 30),   # partly outside a 64x64 image -> clipped + warning
        ("a.png", "Mass", 70, 10, 5, 5),     # wholly outside -> dropped + error
        ("a.png", "Mass", 5, 5, 0, 10),      # zero-area -> dropped + error
        ("a.png", "Mass", 5, 5, -3, 10),     # negative -> dropped + error
        ("a.png", "Mass", "x", 5, 3, 3),     # non-numeric -> dropped + error
        ("zzz.png", "Mass", 1, 1, 3, 3),     # image not in labels.csv -> dropped + error
        ("b.png", "Nodle", 1, 1, 3, 3),      # unknown label -> kept + error
        ("a.png", "Nodule", 1, 1, 3, 3),     # label not among the image's labels -> kept + warning
        ("b.png", "Nodule", 63.995, 0, 0.01, 3),  # overshoot within tolerance -> clipped silently
    ]
    ds = load_dataset(make_folder(tmp_path / "ds", rows, boxes))
    err, warn = _msgs(ds, "error"), _msgs(ds, "warning")
    assert any("boxes.csv:3" in m and "clipped to (50, 50, 14, 14)" in m for m in warn)
    assert any("boxes.csv:4" in m and "wholly outside the 64x64 image" in m for m in err)
    assert any("boxes.csv:5" in m and "zero-area" in m for m in err)
    assert any("boxes.csv:6" in m and "negative" in m for m in err)
    assert any("boxes.csv:7" in m and "non-numeric" in m for m in err)
    assert any("boxes.csv:8" in m and "not in the label table" in m for m in err)
    assert any("unknown box label 'Nodle'" in m and "boxes.csv:9" in m for m in err)
    assert any("a.png" in m and "labels do not include them" in m for m in warn)
    assert len(err) == 6 and len(warn) == 2
    kept = ds.boxes.sort_values(["image_id", "x"]).reset_index(drop=True)
    assert len(kept) == 5
    clipped = kept[(kept.image_id == "a.png") & (kept.x == 50)].iloc[0]
    assert (clipped.w, clipped.h) == (14, 14)
    tiny = kept[kept.image_id == "b.png"].sort_values("x").iloc[-1]
    assert tiny.x + tiny.w == pytest.approx(64.0)


def test_box_sizes_from_headers_when_no_width_height(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass")], [("a.png", "Mass", 30, 30, 60, 10)],
                       size=(40, 80), with_size=False)
    ds = load_dataset(root)
    assert "width" not in ds.records.columns
    b = ds.boxes_for("a.png")[0]
    assert (b.x, b.w, b.y, b.h) == (30, 50, 30, 10)  # clipped at width 80 read from the PNG header


def test_infiltrate_alias_and_blank_patient(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "", "Infiltration")], [("a.png", "Infiltrate", 1, 1, 5, 5)])
    ds = load_dataset(root)
    assert ds.boxes_for("a.png")[0].label == "Infiltration"
    assert any("renamed by alias" in m for m in _msgs(ds, "warning"))
    assert ds.records.at[0, "patient_id"] == "a.png"
    assert any("blank patient_id" in m for m in _msgs(ds, "error"))


def test_label_alias_reported(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Infiltrate"), ("b.png", "p2", "Mass")])
    ds = load_dataset(root, findings=["Infiltration", "Mass"])
    assert ds.labels[0].tolist() == [1, 0]
    assert any("'Infiltrate' read as 'Infiltration' in 1 record(s)" in m for m in _msgs(ds, "warning"))


def test_masks_folder_and_column(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass"), ("b.png", "p2", "")])
    m = np.zeros((64, 64), np.uint8)
    m[5:9, 5:9] = 255
    write_png(root / "masks" / "a.png", m)
    write_png(root / "masks" / "orphan.png", m)
    ds = load_dataset(root)
    assert set(ds.masks) == {"a.png"} and ds.masks["a.png"].endswith("masks/a.png")
    assert any("match no image" in m for m in _msgs(ds, "warning"))
    df = pd.read_csv(root / "labels.csv")
    df["mask"] = ["masks/a.png", "../evil.png"]
    df.to_csv(root / "labels.csv", index=False)
    ds = load_dataset(root)
    assert set(ds.masks) == {"a.png"} and any("mask: image path" in m for m in _msgs(ds, "error"))


def test_loader_errors(tmp_path):
    with pytest.raises(DataError, match="no such"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the dataset format"):
        load_dataset(tmp_path / "empty")
    root = small_folder(tmp_path / "ds")
    with pytest.raises(ConfigError, match="no option.*'uncertain'"):
        load_dataset(root, uncertain="ones")
    with pytest.raises(DataError, match="unknown dataset format 'xyz'"):
        load_dataset(root, format="xyz")
    # pointing at labels.csv reads its folder
    assert len(load_dataset(root / "labels.csv")) == 6
    (root / "images").rename(root / "imgs")
    with pytest.raises(DataError, match="no images/ folder"):
        folder.load(root)


def test_subset_and_with_findings_keep_boxes(tmp_path):
    ds = load_dataset(small_folder(tmp_path / "ds"))
    sub = ds.subset([2, 0])
    assert sub.image_ids == ["c.png", "a.png"] and len(sub.boxes) == 3
    rel = ds.with_findings(["Nodule", "Effusion"])
    assert rel.labels.shape == (6, 2) and np.isnan(rel.labels[:, 1]).all()
