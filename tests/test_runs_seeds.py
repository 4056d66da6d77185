"""Several training seeds of one configuration: one run per seed, mean +- sd over seeds next to each run's
bootstrap CI, finished seeds kept on a re-run, and the report's across-seeds section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radclr.cli.main import main

REPO = Path(__file__).resolve().parents[1]
CFG = str(REPO / "configs" / "tiny" / "seed000_resnet18.yaml")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RADCLR_CACHE", str(tmp_path_factory.getbasetemp() / "radclr-cache"))


def test_seeds_train_summarise_and_report(tmp_path):
    out = tmp_path / "multi"
    assert main(["train", CFG, "--out", str(out), "--seeds", "0,1", "--no-progress"]) == 0
    for s in (0, 1):
        run_cfg = (out / f"seed{s}" / "config.yaml").read_text()
        assert f"seed: {s}" in run_cfg and (out / f"seed{s}" / "metrics.json").exists()
    summary = json.loads((out / "seeds_summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    row = next(m for m in summary["metrics"] if m["metric"] == "auc/mean")
    per = [json.loads((out / f"seed{s}" / "metrics.json").read_text())["classification"]["auc"]["mean"] for s in (0, 1)]
    assert row["seed0"] == per[0] and row["seed1"] == per[1]
    assert row["mean"] == pytest.approx(np.mean(per)) and row["sd"] == pytest.approx(np.std(per, ddof=1))
    assert len(row["seed0_ci"]) == 2
    assert (out / "seeds_summary.csv").exists()
    # re-running keeps finished seeds (no retraining: the checkpoints are untouched)
    mtime = (out / "seed0" / "checkpoints" / "last.pt").stat().st_mtime_ns
    assert main(["train", CFG, "--out", str(out), "--seeds", "0,1", "--no-progress"]) == 0
    assert (out / "seed0" / "checkpoints" / "last.pt").stat().st_mtime_ns == mtime
    # the report of the multi-seed directory shows the spread over seeds
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert 'id="seeds" class="ok"' in html and "mean ± sd over 2 seeds" in html


def test_seeds_refuses_bad_input(tmp_path, capsys):
    assert main(["train", CFG, "--out", str(tmp_path / "a"), "--seeds", "0"]) == 2
    assert "at least two different seeds" in capsys.readouterr().err
    assert main(["train", CFG, "--out", str(tmp_path / "b"), "--seeds", "0,x"]) == 2
    assert "integers" in capsys.readouterr().err
    assert main(["train", CFG, "--out", str(tmp_path / "c"), "--seeds", "0,1", "--folds", "3"]) == 2
    assert "choose one of" in capsys.readouterr().err
