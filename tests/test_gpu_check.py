"""The GPU check's own plumbing, on the CPU: the preflight stops in one line without a CUDA torch, a section's
failure or time-out is recorded in the merged JSON instead of ending the check, and the CPU dry run of a cheap
section gives real results. (The whole dry run -- ``bash scripts/gpu_check.sh --device cpu`` -- takes minutes on
a shared 2-core machine and is run by hand; README, "GPU".)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_preflight_stops_in_one_line_without_cuda(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--device", "cuda", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                            "PYTHON": sys.executable})
    assert proc.returncode == 3
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gpu_check: torch ") and "sees no CUDA device" in lines[0]
    report = json.loads(out.read_text())
    assert report["preflight"]["ok"] is False and "sees no CUDA device" in report["preflight"]["line"]


def _gpu_check(*args):
    return subprocess.run([sys.executable, "scripts/gpu_check.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_merge_records_failed_and_timed_out_sections(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "a.json").write_text(json.dumps({"a": {"value": 1}}))
    (parts / "b.json").write_text(json.dumps({"b": {"error": "RuntimeError: boom"}}))
    (parts / "step_a.json").write_text(json.dumps({"step_a": {"rc": 0, "seconds": 1, "log": "a.log"}}))
    (parts / "step_c.json").write_text(json.dumps({"step_c": {"rc": 124, "seconds": 60, "log": "c.log"}}))
    proc = _gpu_check("merge", *map(str, sorted(parts.glob("*.json"))), str(parts / "missing.json"),
                      "--out", str(tmp_path / "all.json"))
    assert proc.returncode == 0, proc.stderr
    merged = json.loads((tmp_path / "all.json").read_text())
    assert merged["a"] == {"value": 1}
    assert merged["c"]["error"].startswith("no result (rc 124, time limit)")
    assert merged["failed_sections"] == ["b", "c"]
    assert merged["missing_parts"] == ["missing.json"]


def test_a_section_error_goes_into_its_part(tmp_path):
    part = tmp_path / "p.json"
    proc = _gpu_check("ddp", "--device", "cpu", "--work", str(tmp_path), "--logs", str(tmp_path / "no" / "such"),
                      "--part", str(part))
    assert proc.returncode == 1
    result = json.loads(part.read_text())["ddp"]
    assert result["error"].startswith("FileNotFoundError") and "ddp_commands.log" in result["error"]
    assert result["traceback"]


def test_cam_boxes_dry_run_agrees(tmp_path):
    part = tmp_path / "p.json"
    proc = _gpu_check("cam_boxes", "--device", "cpu", "--work", str(tmp_path), "--part", str(part))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(part.read_text())["cam_boxes"]
    assert result["all_equal"] is True and len(result["rows"]) == 6
