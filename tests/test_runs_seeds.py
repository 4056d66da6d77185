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
    half = 12.706205 * np.std(per, ddof=1) / np.sqrt(2)  # t_{0.975,1}
    assert row["t_ci"] == pytest.approx([np.mean(per) - half, np.mean(per) + half], abs=1e-6)
    assert "warning" in summary  # two seeds
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


def _fake_seed_dir(root: Path, aucs: dict[int, float]) -> Path:
    for seed, auc in aucs.items():
        run = root / f"seed{seed}"
        run.mkdir(parents=True)
        m = {"classification": {"auc": {"mean": auc, "Mass": auc - 0.1},
                                "ci": {"auc": {"mean": [auc - 0.05, auc + 0.05], "Mass": None}}}}
        (run / "metrics.json").write_text(json.dumps(m))
    return root


def test_summary_t_interval_and_paired_seed_comparison(tmp_path):
    from radclr.runs.seeds import compare_seed_dirs, summarise_seeds

    a = _fake_seed_dir(tmp_path / "a", {0: 0.80, 1: 0.85, 2: 0.90, 3: 0.82, 4: 0.88})
    b = _fake_seed_dir(tmp_path / "b", {0: 0.79, 1: 0.80, 2: 0.91, 3: 0.78, 4: 0.83, 5: 0.99})
    s = summarise_seeds(a)
    row = next(m for m in s["metrics"] if m["metric"] == "auc/mean")
    # mean 0.85, s = 0.041231, half = 2.776445 * s / sqrt(5) = 0.051194
    assert row["mean"] == pytest.approx(0.85) and row["t_ci"] == pytest.approx([0.85 - 0.051194, 0.85 + 0.051194],
                                                                              abs=1e-5)
    assert row["seed0"] == 0.80 and row["seed0_ci"] == pytest.approx([0.75, 0.85]) and "warning" not in s
    c = compare_seed_dirs(a, b, names=("byop", "supervised"))
    assert c["seeds"] == [0, 1, 2, 3, 4]  # seed 5 only in b: not paired
    d = c["metrics"]["auc/mean"]
    assert d["diffs"] == pytest.approx([0.01, 0.05, -0.01, 0.04, 0.05]) and d["mean_diff"] == pytest.approx(0.028)
    assert d["t_ci"] == pytest.approx([0.028 - 0.0333173, 0.028 + 0.0333173], abs=1e-6)
    assert d["sign"] == {"a_better": 4, "b_better": 1, "ties": 0, "p_value": pytest.approx(0.375)}
