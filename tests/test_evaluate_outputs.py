"""Where `radclr evaluate` writes: the primary evaluation (own data, best checkpoint) owns RUN/metrics.json,
thresholds.json and the prediction tables; any other evaluation goes to RUN/evaluations/<...>/ and leaves them
alone, and thresholds are only reused for the checkpoint they were fit for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radclr.runs.evaluate import _same_data, evaluate_run
from radclr.errors import RadclrError
from radclr.predict import Predictor
from run_factories import byop_run

PRIMARY = ("metrics.json", "thresholds.json", "predictions_test.csv", "predictions_val.csv")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return byop_run(tmp_path_factory)


def test_other_checkpoint_writes_beside_not_over_the_primary_results(run):
    before = {p: (run / p).read_bytes() for p in PRIMARY}
    res = evaluate_run(run, checkpoint="last", n_boot=5, progress=False)
    assert {p: (run / p).read_bytes() for p in PRIMARY} == before
    side = run / "evaluations" / "own-last-test"
    assert Path(res["results_dir"]) == side and res["checkpoint"] == "last.pt"
    saved = json.loads((side / "thresholds.json").read_text())
    assert saved["checkpoint"] == "last.pt" and set(saved["thresholds"]) == set(res["findings"])
    assert json.loads((side / "metrics.json").read_text())["checkpoint"] == "last.pt"
    assert (side / "predictions_test.csv").exists()
    assert json.loads((run / "thresholds.json").read_text())["checkpoint"] == "best.pt"


def test_predict_uses_thresholds_only_for_their_checkpoint(run):
    best = Predictor(run, device="cpu", reference=False)
    saved = json.loads((run / "thresholds.json").read_text())["thresholds"]
    assert best.thresholds == pytest.approx({f: float(t) for f, t in saved.items()})
    last = Predictor(run, device="cpu", checkpoint="last", reference=False)
    assert set(last.thresholds.values()) == {0.5} and "no thresholds fit for last.pt" in last.threshold_rule


def test_val_split_metrics_are_flagged_optimistic(run):
    res = evaluate_run(run, split="val", n_boot=5, progress=False, localization=False)
    assert "optimistic" in res["classification"]["threshold_rule"]
    assert Path(res["results_dir"]).name == "own-best-val"


def test_split_with_another_dataset_is_refused(run, tmp_path):
    with pytest.raises(RadclrError, match="--split val applies to the run's own data"):
        evaluate_run(run, data_path=str(tmp_path), split="val", progress=False)


def test_same_data_compares_resolved_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    assert _same_data("d", str(tmp_path / "d") + "/")
    assert _same_data(["./d", "d"], [str(tmp_path / "d"), "d/"])
    assert not _same_data("d", str(tmp_path / "e"))
    assert _same_data("demo", "demo")
