"""Issue 13, data side: hostile or malformed datasets give one clear line (file or line named, exit status != 0)
and nothing is silently followed or ignored -- decompression bombs, label rows with extra fields, header-only
label tables, bad width/height values, symbolic links leading outside the dataset, degenerate radiomics regions."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
import pytest
from data_factories import gradient, make_folder, small_folder, write_bomb_png, write_png

from radclr.cli.main import main
from radclr.data import load_dataset
from radclr.data.validate import validate_dataset


def cli(capsys, *argv):
    rc = main([*map(str, argv)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out, out.err


# --------------------------------------------------------------------------------------------- decompression bomb
def test_validate_reports_a_decompression_bomb_as_one_problem_and_goes_on(tmp_path, capsys):
    root = small_folder(tmp_path / "ds")
    write_bomb_png(root / "images" / "c.png")
    (root / "images" / "e.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # another bad image after it
    problems = validate_dataset(root, progress=False)
    bomb = [p for p in problems if p.file.endswith("c.png")]
    assert len(bomb) == 1 and bomb[0].severity == "error" and "enormous image" in bomb[0].message
    assert any(p.file.endswith("e.png") for p in problems)  # validation went on past the bomb
    rc, out, _ = cli(capsys, "data", "validate", root, "--no-progress")
    assert rc == 1 and "c.png: the header claims an enormous image (10,000,000,000 pixels" in out


def test_radiomics_extract_on_a_decompression_bomb_names_the_file(tmp_path, capsys):
    pytest.importorskip("radiomics")
    root = small_folder(tmp_path / "ds")
    write_bomb_png(root / "images" / "a.png")
    rc, _, err = cli(capsys, "radiomics", "extract", root, "--boxes", "--out", tmp_path / "f.csv", "--no-progress")
    assert rc == 2 and "a.png: the header claims an enormous image" in err
    assert not (tmp_path / "f.csv").exists()


def test_train_on_a_decompression_bomb_names_the_file(tmp_path, capsys):
    root = small_folder(tmp_path / "ds")
    write_bomb_png(root / "images" / "b.png")
    from conftest import REPO

    rc, _, err = cli(capsys, "train", REPO / "configs" / "tiny" / "seed000_resnet18.yaml", "--out", tmp_path / "run",
                     f"data.path={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.findings=null")
    assert rc == 2 and "b.png: the header claims an enormous image" in err
    assert not list((tmp_path / "cache").glob("images-*"))  # the half-built image store was removed


# --------------------------------------------------------------------------------------------- label tables
def test_row_with_more_fields_than_the_header(tmp_path, capsys):
    root = small_folder(tmp_path / "ds")
    lines = (root / "labels.csv").read_text().splitlines()
    (root / "labels.csv").write_text("\n".join([lines[0]] + [ln + ",x" for ln in lines[1:]]) + "\n")  # every row
    for cmd in ("validate", "summary"):
        rc, out, err = cli(capsys, "data", cmd, root, *(["--no-progress"] if cmd == "validate" else []))
        text = out + err
        assert rc in (1, 2) and "labels.csv:2: row has 6 fields but the header has 5 (6 such row(s))" in text, cmd
    lines[3] += ",x,y"  # one row only (pandas' own error path)
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    rc, _, err = cli(capsys, "data", "summary", root)
    assert rc == 2 and "labels.csv:4: row has 7 fields but the header has 5 (1 such row(s))" in err


def test_trailing_empty_fields_are_harmless(tmp_path):
    root = small_folder(tmp_path / "ds")
    lines = (root / "labels.csv").read_text().splitlines()
    (root / "labels.csv").write_text("\n".join([lines[0]] + [ln + ",," for ln in lines[1:]]) + "\n")
    ds = load_dataset(root)
    assert len(ds) == 6 and ds.image_ids[0] == "a.png" and not [p for p in ds.problems if p.severity == "error"]


def test_header_only_label_table_is_an_error(tmp_path, capsys):
    root = small_folder(tmp_path / "ds")
    (root / "labels.csv").write_text("image,patient_id,labels\n")
    (root / "boxes.csv").unlink()
    problems = validate_dataset(root, progress=False)
    assert [p.message for p in problems if p.severity == "error"] == [
        "lists no images (a header and no rows): the dataset is empty"]
    rc, out, _ = cli(capsys, "data", "validate", root, "--no-progress")
    assert rc == 1 and "labels.csv: lists no images" in out


def test_width_height_that_are_text_negative_or_fractional(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass"), ("b.png", "p2", "Mass"), ("c.png", "p3", "Mass"),
                                         ("d.png", "p4", "Mass")],
                       [("a.png", "Mass", 50, 50, 20, 20)], size=(64, 64))
    df = pd.read_csv(root / "labels.csv", dtype=str)
    df.loc[0, "width"], df.loc[1, "height"], df.loc[2, "width"], df.loc[3, "height"] = "wide", "-64", "64.5", "0"
    df.to_csv(root / "labels.csv", index=False)
    ds = load_dataset(root)
    errors = sorted(p.message.split(" is not")[0] for p in ds.problems if p.severity == "error")
    assert errors == ["height '-64'", "height '0'", "width '64.5'", "width 'wide'"]
    assert all("labels.csv:" in p.file for p in ds.problems if p.severity == "error")
    assert np.isnan(ds.records.loc[0, "width"]) and ds.records.loc[1, "width"] == 64  # bad value blanked only
    assert len(ds.boxes) == 1 and ds.boxes.iloc[0]["w"] == 14  # the box was checked against the file's 64 px
    rc, out, _ = cli(capsys, "data", "validate", root, "--no-progress")
    assert rc == 1 and out.count("is not a positive whole number of pixels") == 4
    assert "label table says" not in out  # the blanked values are not compared with the files


# --------------------------------------------------------------------------------------------- symbolic links
def _linked_dataset(tmp_path):
    outside = write_png(tmp_path / "elsewhere" / "secret.png", gradient(64, 64))
    root = small_folder(tmp_path / "ds")
    (root / "images" / "a.png").unlink()
    (root / "images" / "a.png").symlink_to(outside)
    os.symlink(root / "images" / "b.png", root / "images" / "inside.png")  # stays inside the root: fine
    return root, outside


def test_symlinks_leading_outside_the_root_are_refused(tmp_path, capsys):
    root, outside = _linked_dataset(tmp_path)
    df = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    df.loc[len(df)] = ["inside.png", "p9", "Mass", "64", "64"]
    df.to_csv(root / "labels.csv", index=False)
    ds = load_dataset(root)
    assert "a.png" not in ds.image_ids and "inside.png" in ds.image_ids and len(ds) == 6
    assert not (ds.boxes["image_id"] == "a.png").any()
    (p,) = [p for p in ds.problems if "symbolic links" in p.message]
    assert p.severity == "error" and f"a.png -> {outside}" in p.message and "--follow-links" in p.message
    rc, out, _ = cli(capsys, "data", "validate", root, "--no-progress")
    assert rc == 1 and "resolve outside the dataset root" in out
    # the explicit option reads them
    assert "a.png" in load_dataset(root, follow_links=True).image_ids
    rc, out, _ = cli(capsys, "data", "validate", root, "--no-progress", "--follow-links")
    assert rc == 0 and "symbolic links" not in out


def test_a_linked_images_folder_is_outside_too_and_the_option_reads_it(tmp_path):
    real = small_folder(tmp_path / "real")
    root = tmp_path / "ds"
    root.mkdir()
    (root / "labels.csv").write_text((real / "labels.csv").read_text())
    (root / "images").symlink_to(real / "images")
    ds = load_dataset(root)
    assert len(ds) == 0 and "6 image file(s) resolve outside" in ds.problems[-1].message
    assert [p.message for p in validate_dataset(ds, progress=False)][-1].startswith("no usable image")
    assert len(load_dataset(root, follow_links=True)) == 6
    (tmp_path / "ds-link").symlink_to(real)  # a dataset root that is itself a link is fine
    assert len(load_dataset(tmp_path / "ds-link")) == 6


def test_a_link_loop_in_the_images_folder_is_walked_once(tmp_path):
    root = small_folder(tmp_path / "ds")
    (root / "images" / "loop").symlink_to(root / "images")
    ds = load_dataset(root)
    assert len(ds) == 6 and not [p for p in ds.problems if "not listed" in p.message]


def test_config_follow_links_reaches_the_loader(tmp_path):
    from radclr.engine.config import resolve_config
    from radclr.training_data.prepare import open_dataset

    root, _ = _linked_dataset(tmp_path)
    cfg = resolve_config(None, [f"data.path={root}"])
    assert cfg["data"]["follow_links"] is False and "a.png" not in open_dataset(cfg["data"]).image_ids
    cfg = resolve_config(None, [f"data.path={root}", "data.follow_links=true"])
    assert "a.png" in open_dataset(cfg["data"]).image_ids


# --------------------------------------------------------------------------------------------- degenerate radiomics
def test_nan_radiomics_name_the_image_and_the_box(tmp_path, capsys, caplog):
    pytest.importorskip("radiomics")
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass"), ("b.png", "p2", "Mass")],
                       [("a.png", "Mass", 10, 10, 20, 20), ("b.png", "Mass", 30, 12, 1, 1)])  # a single pixel
    with caplog.at_level(logging.WARNING, logger="radclr"):
        rc, out, _ = cli(capsys, "radiomics", "extract", root, "--out", tmp_path / "f.csv", "--no-progress")
    assert rc == 0 and "1 region(s) with NaN features: b.png box 0 (Mass)" in out
    text = caplog.text
    assert "b.png box 0 (Mass at x=30, y=12, w=1, h=1)" in text and "its features are NaN" in text
    assert "region 0" not in text


# ============================================================================================= issue 20
from conftest import REPO  # noqa: E402

TINY = REPO / "configs" / "tiny" / "seed000_resnet18.yaml"


def _train(capsys, tmp_path, root, *overrides):
    return cli(capsys, "train", TINY, "--out", tmp_path / "run", f"data.path={root}", "data.image_size=32",
               f"data.cache_dir={tmp_path / 'cache'}", "data.findings=null", "--no-eval", *overrides)


def _rows(n, labels):
    return [(f"i{k:02d}.png", f"p{k}", labels(k)) for k in range(n)]


# ------------------------------------------------------------------ 10. images
def test_nifti_nan_voxels_are_reported_by_validate_and_refused_in_training(tmp_path, capsys):
    from data_factories import write_sitk

    root = make_folder(tmp_path / "ds", _rows(12, lambda k: "Mass" if k % 2 else "No Finding"))
    labels = pd.read_csv(root / "labels.csv")
    labels.loc[3, "image"] = "nan.nii.gz"
    labels.to_csv(root / "labels.csv", index=False)
    a = gradient(64, 64).astype(np.float32)
    a[10, 10], a[20, 20] = np.nan, np.inf
    write_sitk(root / "images" / "nan.nii.gz", a)
    problems = validate_dataset(root, progress=False)
    assert [p.message for p in problems if p.file.endswith("nan.nii.gz")] == ["2 NaN/infinite pixel value(s)"]
    rc, _, err = _train(capsys, tmp_path, root)
    assert rc == 2 and f"{root / 'images' / 'nan.nii.gz'}: image contains 2 NaN or infinite value(s)" in err
    assert not (tmp_path / "run").exists()  # a refused run leaves no folder behind


def test_exif_orientation_is_said_not_silently_ignored(tmp_path, capsys):
    from PIL import Image

    root = small_folder(tmp_path / "ds")
    im = Image.fromarray(gradient(64, 64))
    exif = im.getexif()
    exif[274] = 6
    im.save(root / "images" / "b.jpg", exif=exif.tobytes())
    labels = pd.read_csv(root / "labels.csv")
    labels.loc[1, "image"] = "b.jpg"
    labels.to_csv(root / "labels.csv", index=False)
    (root / "images" / "b.png").unlink()
    problems = validate_dataset(root, progress=False)
    (w,) = [p for p in problems if p.file.endswith("b.jpg")]
    assert w.severity == "warning" and "EXIF orientation 6 (rotated 90 degrees clockwise) is not applied" in w.message


def test_constant_and_tiny_images_and_findings_without_negatives_are_named_when_training_starts(tmp_path, capsys,
                                                                                                  caplog):
    root = make_folder(tmp_path / "ds", _rows(14, lambda k: "Mass|Nodule" if k % 2 else "Mass"))
    write_png(root / "images" / "i03.png", np.full((64, 64), 90, dtype=np.uint8))
    write_png(root / "images" / "i05.png", np.array([[1, 2], [3, 4]], dtype=np.uint8))
    labels = pd.read_csv(root / "labels.csv").drop(columns=["width", "height"])
    labels.to_csv(root / "labels.csv", index=False)
    with caplog.at_level(logging.WARNING):
        rc, _, err = _train(capsys, tmp_path, root)
    assert rc == 0
    assert "1 constant image(s) (every pixel the same: no information to learn from" in caplog.text
    assert "i03.png" in caplog.text
    assert "1 very small image(s) (under 32 px a side, stretched to 32 px): i05.png" in caplog.text
    assert "finding 'Mass' has no negative image in the training labels" in caplog.text


@pytest.mark.parametrize("labels, message", [
    (lambda k: "Mass", "no finding has both positive and negative labelled training images (Mass: "),
    (lambda k: "" if k < 8 else ("Mass" if k % 2 else "No Finding"),
     "none of the 8 labelled training image(s) has a known label"),
    (lambda k: "", "the labels name no finding: nothing to learn"),
    (lambda k: "No Finding", "the labels name no finding: nothing to learn"),
])
def test_training_that_cannot_learn_is_refused(tmp_path, capsys, labels, message):
    root = make_folder(tmp_path / "ds", _rows(12, labels))
    split = pd.DataFrame({"image_id": [f"i{k:02d}.png" for k in range(12)], "patient_id": [f"p{k}" for k in range(12)],
                          "split": ["train"] * 8 + ["val"] * 2 + ["test"] * 2})
    split.to_csv(tmp_path / "split.csv", index=False)
    rc, _, err = _train(capsys, tmp_path, root, f"data.split.file={tmp_path / 'split.csv'}")
    assert rc == 2 and message in err
    assert not (tmp_path / "run").exists()


def test_zero_epochs_is_said(tmp_path, capsys, caplog):
    root = make_folder(tmp_path / "ds", _rows(12, lambda k: "Mass" if k % 2 else "No Finding"))
    with caplog.at_level(logging.WARNING):
        rc, _, _ = _train(capsys, tmp_path, root, "trainer.epochs=0")
    assert rc == 0 and "every stage has 0 epochs -- nothing is trained: the run holds the UNTRAINED" in caplog.text


# ------------------------------------------------------------------ 11. labels and box tables
def test_label_case_and_whitespace_variants_are_one_finding(tmp_path):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass"), ("b.png", "p2", "mass "), ("c.png", "p3", "Mass"),
                                         ("d.png", "p4", "No Finding")],
                       boxes=[("b.png", "mass", 1, 1, 5, 5)])
    ds = load_dataset(root)
    assert ds.findings == ["Mass"] and ds.labels[:, 0].tolist() == [1, 1, 1, 0]
    assert [b.label for b in ds.boxes_for("b.png")] == ["Mass"]
    assert any("'Mass' (2 image(s)), 'mass' (1 image(s)) differ only in case or separators: read as one finding "
               "'Mass'" in p.message for p in ds.problems if p.severity == "warning")


def test_labels_joined_with_commas_or_semicolons(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", [("a.png", "p1", "Mass,Nodule"), ("b.png", "p2", "Nodule; Mass"),
                                         ("c.png", "p3", "Mass")])
    ds = load_dataset(root)
    assert ds.findings == ["Mass", "Nodule"] and ds.labels.tolist() == [[1, 1], [1, 1], [1, 0]]
    errors = [p.message for p in ds.problems if p.severity == "error"]
    assert any(f"label 'Mass,Nodule' in 1 record(s) ({root / 'labels.csv'}:2) joins labels with ','; labels are "
               "separated by '|': read as Mass | Nodule" in m for m in errors)
    rc, out, _ = cli(capsys, "data", "validate", root, "--no-progress")
    assert rc == 1 and "joins labels with ';'" in out


@pytest.mark.parametrize("kind", ["folder", "case"])
def test_a_box_table_that_is_a_folder_or_spelt_in_another_case(tmp_path, capsys, kind):
    root = small_folder(tmp_path / "ds")
    if kind == "folder":
        (root / "boxes.csv").unlink()
        (root / "boxes.csv").mkdir()
        expected = "boxes.csv: is a folder, not the box table file; not read"
    else:
        (root / "boxes.csv").rename(root / "Boxes.csv")
        expected = "Boxes.csv: the box table must be named boxes.csv exactly"
    rc, out, _ = cli(capsys, "data", "validate", root, "--no-progress")
    assert rc == 1 and expected in out
