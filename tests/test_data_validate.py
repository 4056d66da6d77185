"""validate_dataset flags every bad-input case of issue 2 (and passes a clean dataset)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_factories import gradient, make_folder, small_folder, truncate, write_dicom, write_png

from radclr.data import load_dataset
from radclr.data.validate import has_errors, validate_dataset


def bad_dataset(root):
    """One folder dataset holding every bad-input case (and some good images)."""
    rows = [
        ("good.png", "p1", "Mass"),
        ("truncated.png", "p2", "Mass"),
        ("corrupt.png", "p3", "Nodule"),
        ("missing.png", "p4", "Nodule"),
        ("rgb.png", "p5", "No Finding"),
        ("sixteen.png", "p6", "No Finding"),
        ("mono1.dcm", "p7", "Mass"),
        ("truncated.dcm", "p8", "Mass"),
        ("../escape.png", "p9", "Mass"),
        ("/etc/absolute.png", "p10", "Mass"),
        ("typo.png", "p11", "Nodle"),
        ("constant.png", "p12", "No Finding"),
        ("wrongsize.png", "p13", "No Finding"),
    ]
    root = make_folder(root, rows, [
        ("good.png", "Mass", 50, 50, 30, 30),     # partly outside -> clipped + warning
        ("good.png", "Mass", 100, 100, 5, 5),     # wholly outside -> error
        ("good.png", "Mass", 10, 10, 0, 0),       # zero area -> error
        ("typo.png", "Mass", 1, 1, 4, 4),         # fine box on an image without that label -> warning
    ], write_images=False)
    (root / "findings.txt").write_text("Mass\nNodule\n")  # declared: "Nodle" is an unknown label
    img = root / "images"
    for name in ("good.png", "typo.png"):
        write_png(img / name, gradient(64, 64))
    truncate(write_png(img / "truncated.png", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)), 0.4)
    (img / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    rgb = np.stack([gradient(64, 64), gradient(64, 64)[::-1], gradient(64, 64).T], -1)
    write_png(img / "rgb.png", rgb)
    write_png(img / "sixteen.png", gradient(64, 64, 4000, np.uint16))
    write_dicom(img / "mono1.dcm", gradient(64, 64, 4095, np.uint16), photometric="MONOCHROME1")
    truncate(write_dicom(img / "truncated.dcm", gradient(64, 64, 4095, np.uint16)), 0.6)
    write_png(img / "constant.png", np.full((64, 64), 7, np.uint8))
    write_png(img / "wrongsize.png", gradient(40, 64))
    return root


def _find(problems, fragment, name=None, severity=None):
    hits = [p for p in problems if fragment in p.message and (name is None or name in p.file or name in p.message)
            and (severity is None or p.severity == severity)]
    assert hits, f"no problem with {fragment!r} ({name}); got:\n" + "\n".join(map(str, problems))
    return hits


def test_every_bad_input_case_is_flagged(tmp_path):
    problems = validate_dataset(bad_dataset(tmp_path / "bad"), progress=False)
    assert has_errors(problems)
    _find(problems, "truncated", "truncated.png", "error")
    _find(problems, "corrupt", "corrupt.png", "error")
    _find(problems, "image file missing", "missing.png", "error")
    _find(problems, "converted to grayscale", "rgb.png", "warning")
    _find(problems, "16-bit image", "sixteen.png", "warning")
    _find(problems, "MONOCHROME1", "mono1.dcm", "warning")
    _find(problems, "truncated", "truncated.dcm", "error")
    _find(problems, "escapes the dataset root", None, "error")
    _find(problems, "absolute image path", None, "error")
    _find(problems, "unknown label 'Nodle'", None, "error")
    _find(problems, "clipped to", "boxes.csv:2", "warning")
    _find(problems, "wholly outside", "boxes.csv:3", "error")
    _find(problems, "zero-area", "boxes.csv:4", "error")
    _find(problems, "labels do not include", "typo.png", "warning")
    _find(problems, "constant image", "constant.png", "error")
    _find(problems, "but the file is 64x40", "wrongsize.png", "error")
    # every line names a file
    assert all(p.file and str(p).startswith(("error: ", "warning: ")) for p in problems)
    # nothing dropped silently: each record either loaded or has a problem naming it
    ds = load_dataset(tmp_path / "bad")
    listed = pd.read_csv(tmp_path / "bad" / "labels.csv")["image"]
    for name in listed:
        assert name in ds.image_ids or any(name.split("/")[-1] in str(p) for p in ds.problems), name


def test_missing_columns_and_duplicates_become_one_error(tmp_path):
    root = make_folder(tmp_path / "dup", [("a.png", "p1", "Mass"), ("a.png", "p2", "Mass")])
    problems = validate_dataset(root, progress=False)
    assert len(problems) == 1 and "duplicate image id" in problems[0].message and problems[0].severity == "error"
    root = make_folder(tmp_path / "cols", [("a.png", "p1", "Mass")])
    pd.DataFrame({"image": ["a.png"]}).to_csv(root / "labels.csv", index=False)
    (p,) = validate_dataset(root, progress=False)
    assert "missing required column(s) ['patient_id', 'labels']" in p.message and "labels.csv" in p.message


def test_clean_dataset_has_no_errors(tmp_path):
    problems = validate_dataset(small_folder(tmp_path / "ok"), progress=False)
    assert problems == []


def test_masks_checked(tmp_path):
    root = make_folder(tmp_path / "m", [("a.png", "p1", "Mass"), ("b.png", "p2", "Mass")])
    write_png(root / "masks" / "a.png", np.zeros((64, 64), np.uint8))
    write_png(root / "masks" / "b.png", np.ones((32, 32), np.uint8))
    problems = validate_dataset(root, progress=False)
    _find(problems, "empty mask", "a.png", "warning")
    _find(problems, "mask shape (32, 32) differs", "b.png", "error")


@pytest.mark.realdata
def test_real_community_boxes_validate_without_errors():
    from conftest import shared_dataset

    problems = validate_dataset(shared_dataset("nih_community_boxes"), progress=False)
    assert not has_errors(problems)
    assert all("labels do not include" in p.message for p in problems)  # weak boxes on other findings
