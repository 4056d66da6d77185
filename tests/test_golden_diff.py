"""Re-recording the golden tiny-run fingerprints prints what changed, key by key (issue 21, item 8)."""

from __future__ import annotations

import json

import pytest

import golden_metrics


def _run(path, loss: float):
    path.mkdir()
    (path / "metrics.csv").write_text(f"stage,epoch,train_loss,time_s\ntrain,1,{loss},1.5\n")
    (path / "metrics.json").write_text(json.dumps({"classification": {"auc": {"mean": 0.75}}, "run": "x"}))
    return path


def test_re_recording_prints_the_per_key_diff(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RADCLR_UPDATE_GOLDEN", raising=False)  # (the suite may itself be re-recording)
    golden = tmp_path / "golden" / "tiny_metrics.json"
    golden.parent.mkdir()
    monkeypatch.setattr(golden_metrics, "GOLDEN", golden)
    golden.write_text(json.dumps({"cfg": golden_metrics.fingerprint(_run(tmp_path / "old", 0.5))}))
    new = _run(tmp_path / "new", 0.25)
    assert golden_metrics.check_against_golden("cfg", new) == ["cfg metrics_csv 0.train_loss: golden 0.5, now 0.25"]
    monkeypatch.setenv("RADCLR_UPDATE_GOLDEN", "1")
    with pytest.warns(UserWarning, match="golden cfg: re-recorded, 1 key"):
        assert golden_metrics.check_against_golden("cfg", new) == []
    err = capsys.readouterr().err
    assert "golden cfg: re-recorded, 1 key(s) changed" in err and "0.train_loss: golden 0.5, now 0.25" in err
    assert "time_s" not in err  # wall-clock times are not part of a fingerprint
    monkeypatch.delenv("RADCLR_UPDATE_GOLDEN")
    assert golden_metrics.check_against_golden("cfg", new) == []  # the recorded file is folded in and matches
