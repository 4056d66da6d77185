"""`radclr data summary|split|validate|synth` end to end (in-process), and the acceptance checks on real data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, shared_dataset
from data_factories import make_kermany, small_folder, truncate, write_png

from radclr.cli.main import main
from radclr.data import load_dataset
from radclr.data import splits as S


def run(capsys, *argv):
    rc = main(["data", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_summary_json_and_text(tmp_path, capsys):
    root = small_folder(tmp_path / "ds")
    rc, out, _ = run(capsys, "summary", root, "--json")
    s = json.loads(out)
    assert rc == 0 and s["images"] == 6 and s["patients"] == 4 and s["format"] == "folder"
    assert s["label_counts"] == {"Mass": 2, "Nodule": 2, "No Finding": 2}
    assert s["boxes"] == 3 and s["boxes_per_label"] == {"Mass": 2, "Nodule": 1} and s["images_with_boxes"] == 2
    assert s["unlabelled_images"] == 1 and s["problems"] == {"total": 0, "errors": 0, "warnings": 0}
    rc, out, _ = run(capsys, "summary", root)
    assert rc == 0 and "images    6" in out and "No Finding" in out


def test_summary_with_format_option(tmp_path, capsys):
    root = make_kermany(tmp_path / "k")
    rc, out, _ = run(capsys, "summary", root, "--format", "kermany", "--json")
    assert rc == 0 and json.loads(out)["label_counts"] == {"Pneumonia": 4, "Bacterial": 3, "Viral": 1, "No Finding": 3}


def test_split_writes_a_patient_wise_csv(tmp_path, capsys):
    root = small_folder(tmp_path / "ds")
    out_csv = tmp_path / "split.csv"
    rc, out, _ = run(capsys, "split", root, "--out", out_csv, "--val", "0.2", "--test", "0.2", "--seed", "1")
    assert rc == 0 and "written to" in out
    t = S.load_split(out_csv)
    assert list(t.columns) == ["image_id", "patient_id", "split"] and len(t) == 6
    assert (t.groupby("patient_id")["split"].nunique() == 1).all()
    rc, _, _ = run(capsys, "split", root, "--out", tmp_path / "k.csv", "--folds", "2", "--label-fraction", "0.5")
    t = S.load_split(tmp_path / "k.csv")
    assert rc == 0 and set(t["fold"]) == {0, 1} and "labeled" in t.columns


def test_split_user_errors_exit_2_without_traceback(tmp_path, capsys):
    root = small_folder(tmp_path / "ds")
    rc, _, err = run(capsys, "split", root, "--out", tmp_path / "s.csv", "--val", "0.1", "--folds", "3")
    assert rc == 2 and "exclude each other" in err and "Traceback" not in err
    rc, _, err = run(capsys, "split", root, "--out", tmp_path / "s.csv", "--val", "0.6", "--test", "0.5")
    assert rc == 2 and "sum must be < 1" in err
    rc, _, err = run(capsys, "summary", tmp_path / "nowhere")
    assert rc == 2 and "no such" in err


def test_validate_exit_status_and_one_line_per_problem(tmp_path, capsys):
    root = small_folder(tmp_path / "ds")
    rc, out, err = run(capsys, "validate", root, "--no-progress")
    assert rc == 0 and out == "" and "0 error(s)" in err
    truncate(root / "images" / "c.png", 0.3)
    write_png(root / "images" / "d.png", np.stack([np.eye(64, dtype=np.uint8) * 200] * 3, -1))
    rc, out, err = run(capsys, "validate", root, "--no-progress")
    lines = out.strip().splitlines()
    assert rc == 1 and len(lines) == 2
    assert lines[0].startswith("error: ") and "c.png" in lines[0]
    assert lines[1].startswith("warning: ") and "d.png" in lines[1] and "grayscale" in lines[1]
    assert "Traceback" not in err


def test_validate_unloadable_dataset_is_one_line(tmp_path, capsys):
    root = small_folder(tmp_path / "ds")
    pd.DataFrame({"image": ["a.png"]}).to_csv(root / "labels.csv", index=False)
    rc, out, err = run(capsys, "validate", root, "--no-progress")
    assert rc == 1 and "missing required column(s)" in out and "Traceback" not in err


def test_synth(tmp_path, capsys):
    out_dir = tmp_path / "ph"
    rc, out, _ = run(capsys, "synth", out_dir, "--n", "12", "--size", "48", "--seed", "2")
    assert rc == 0 and "12 phantom images" in out
    ds = load_dataset(out_dir)
    assert len(ds) == 12 and ds.read(0).shape == (48, 48)
    rc, _, err = run(capsys, "synth", out_dir, "--n", "3")
    assert rc == 2 and "--force" in err
    rc, _, _ = run(capsys, "synth", out_dir, "--n", "3", "--force")
    assert rc == 0 and len(load_dataset(out_dir)) == 3


def test_data_cli_does_not_import_torch(tmp_path):
    root = small_folder(tmp_path / "ds")
    code = ("import sys; from radclr.cli.main import main; "
            f"rc = main(['data', 'summary', {str(root)!r}, '--json']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------------------------- acceptance (real data)
@pytest.mark.realdata
def test_summary_of_nih_cxr14_matches_the_csv(capsys):
    root = shared_dataset("nih_cxr14")
    rc, out, _ = run(capsys, "summary", root, "--json")
    s = json.loads(out)
    ref = pd.read_csv(root / "labels.csv", dtype=str)  # independent count with pandas
    names = ref["labels"].str.split("|").explode()
    assert rc == 0 and s["images"] == len(ref) == 1396
    assert s["patients"] == ref["patient_id"].nunique()
    assert s["label_counts"] == names.value_counts().to_dict()  # every finding and No Finding
    assert s["problems"]["total"] == 0


@pytest.mark.realdata
def test_split_of_nih_cxr14_via_cli(tmp_path, capsys):
    root = shared_dataset("nih_cxr14")
    rc, _, _ = run(capsys, "split", root, "--out", tmp_path / "s.csv", "--seed", "0")
    t = S.load_split(tmp_path / "s.csv")
    assert rc == 0 and len(t) == 1396 and (t.groupby("patient_id")["split"].nunique() == 1).all()
