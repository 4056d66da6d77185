"""Patient-wise k-fold cross-validation of a config: every image tested once, no patient in two parts."""

from pathlib import Path

import json

import pandas as pd

from radclr.cli.main import main

REPO = Path(__file__).resolve().parents[1]


def test_three_fold_cross_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("RADCLR_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cv"
    cfg = REPO / "configs" / "tiny" / "seed000_resnet18.yaml"
    assert main(["train", str(cfg), "--out", str(out), "--folds", "3", "--no-progress"]) == 0
    splits = [pd.read_csv(out / f"split_fold{f}.csv", dtype={"image_id": str, "patient_id": str}) for f in range(3)]
    tested = pd.concat([s[s["split"] == "test"] for s in splits])
    assert tested["image_id"].is_unique and len(tested) == len(splits[0])  # each image tested exactly once
    for s in splits:
        assert s.groupby("patient_id")["split"].nunique().max() == 1
        assert set(s["split"]) == {"train", "val", "test"}
    summary = json.loads((out / "cv_summary.json").read_text())
    assert summary["k"] == 3 and len(summary["folds"]) == 3
    aucs = [r["auc"] for r in summary["folds"]]
    assert abs(summary["summary"]["auc"]["mean"] - sum(aucs) / 3) < 1e-9 and summary["summary"]["auc"]["sd"] >= 0
    for f in range(3):  # each round trained on its own split
        run_split = pd.read_csv(out / f"fold{f}" / "splits.csv", dtype={"image_id": str})
        assert (run_split.set_index("image_id")["split"] == splits[f].set_index("image_id")["split"]).all()
